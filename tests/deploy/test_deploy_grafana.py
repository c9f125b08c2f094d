"""The Grafana dashboard and its provisioning: valid, on real metric names, valid PromQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_helpers import (DASHBOARD, DEPLOY, SCRAPE_SERIES, exposed_metric_names, load_yaml,
                            promql_metric_names, run_promtool)

# Metrics deliberately without a panel, and why.
NOT_CHARTED = {
    "onestop_capture_confirmed_lsn": "an LSN as a number says nothing; slot lag bytes is charted",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return out


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in panels(dashboard)
            if panel["type"] != "row" for target in panel["targets"]]


def test_dashboard_is_a_modern_grafana_dashboard_with_a_datasource_variable(
        dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_every_panel_queries_prometheus_through_the_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_expressions_are_plain_promql_without_grafana_variables(dashboard: dict[str, Any]) -> None:
    """Another test evaluates them against a real Prometheus as written."""
    for title, expr in queries(dashboard):
        assert "$" not in expr, f"{title}: {expr}"


def test_expressions_use_only_metrics_defined_in_bridge_metrics(dashboard: dict[str, Any]) -> None:
    known = exposed_metric_names() | SCRAPE_SERIES
    for title, expr in queries(dashboard):
        used = promql_metric_names(expr)
        assert used, f"{title}: no metric in {expr!r}"
        assert used <= known, f"{title}: unknown metrics {used - known}"


def test_expressions_parse_as_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": expr}
             for i, (_title, expr) in enumerate(queries(dashboard))]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
                    encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_of_the_registry_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for _title, expr in queries(dashboard):
        used |= promql_metric_names(expr)
    families = {name.removesuffix(suffix) for name in used
                for suffix in ("_total", "_bucket", "_count", "_sum", "_info", "")
                if name.endswith(suffix)}
    from bridge import metrics

    missing = {f.name for f in metrics.REGISTRY.collect()} - families - {
        n.removesuffix("_total") for n in NOT_CHARTED}
    assert not missing, f"metrics without a panel (add one, or list them in NOT_CHARTED): {missing}"


def test_the_panels_operators_asked_for_exist(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(expr for _t, expr in queries(dashboard))
    for fragment in (
        "sum by (channel) (rate(onestop_delivery_attempts_total",        # messages by channel
        "increase(onestop_cost_vnd_total[1d])", "increase(onestop_cost_vnd_total[30d])",
        "increase(onestop_sms_savings_vnd_total[1d])", "increase(onestop_sms_savings_vnd_total[30d])",
        "histogram_quantile(0.5, sum by (le, channel) (rate(onestop_event_to_sent_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, channel) (rate(onestop_event_to_sent_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, channel) (rate(onestop_event_to_delivered_seconds_bucket",
        "onestop_consumer_lag", "onestop_dlq_records_total", "sum by (channel, code)",
        "sum by (kind, outcome)", "onestop_rate_limit_wait_seconds", "onestop_zns_quota_remaining",
        "onestop_zalo_token_refresh_total", "onestop_webhook_requests_total", "onestop_lookups_total",
        "onestop_capture_slot_lag_bytes", "onestop_capture_last_event_age_seconds",
        "onestop_capture_connected", 'up{job="onestop-capture"}', 'up{job="onestop-bridge"}',
    ):
        assert fragment in exprs, fragment


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard() -> None:
    sources = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
    assert sources[0]["url"] == "http://prometheus:9090"
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/onestop.yml")["providers"]
    path = providers[0]["options"]["path"]
    compose = load_yaml(DEPLOY / "compose.yaml")
    mounts = [v for v in compose["services"]["grafana"]["volumes"] if isinstance(v, str)]
    assert any(m.startswith("./grafana/onestop-bridge.json:" + path + "/") for m in mounts), mounts
    assert any(m.startswith("./grafana/provisioning:/etc/grafana/provisioning") for m in mounts)
