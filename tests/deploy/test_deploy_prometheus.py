"""Prometheus rules and scrape config: valid for promtool, unit-tested, on real metric names."""

from __future__ import annotations

import glob
import re

from deploy_helpers import (DEPLOY, ROOT, RULE_TESTS, RULES, SCRAPE_SERIES, alert_rules,
                            exposed_metric_names, load_yaml, promql_metric_names, recording_rules,
                            run_promtool)


def test_rule_files_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", *sorted(glob.glob(str(DEPLOY / "prometheus/*.rules.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass_promtool_test() -> None:
    result = run_promtool("test", "rules",
                          *sorted(glob.glob(str(DEPLOY / "prometheus/tests/*.test.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_makefile_globs_still_match_the_rule_and_test_files() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for pattern, expected in (("deploy/prometheus/*.rules.yml", RULES),
                              ("deploy/prometheus/tests/*.test.yml", RULE_TESTS)):
        assert pattern in makefile
        assert str(expected) in glob.glob(str(ROOT / pattern))


def test_prometheus_config_passes_promtool_check() -> None:
    result = run_promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_are_the_ones_rules_and_dashboard_select_on() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in (("onestop-bridge", 8080), ("onestop-capture", 8081)):
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets and all(t.endswith(f":{port}") for t in targets), targets
    rule_globs = config["rule_files"]
    assert any(RULES.name in glob.glob(pattern, root_dir=RULES.parent) for pattern in rule_globs)


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = alert_rules()
    assert len(alerts) >= 10
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


def test_rules_select_only_metrics_that_bridge_metrics_defines() -> None:
    known = exposed_metric_names() | SCRAPE_SERIES
    recorded = {rule["record"] for rule in recording_rules()}
    for rule in alert_rules() + recording_rules():
        used = promql_metric_names(rule["expr"])
        assert used, f"no metric found in {rule['expr']!r}"
        unknown = used - known - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {unknown}"


def test_the_alerts_the_operators_view_needs_exist() -> None:
    """The brief's list, by the metric each alert must watch."""
    by_metric = {
        "onestop_consumer_lag": 2, "onestop_dlq_records_total": 1,
        "onestop_delivery_attempts_total": 1, "onestop_events_consumed_total": 1,
        "onestop_zalo_token_refresh_total": 1, "onestop_zns_quota_remaining": 1,
        "onestop_capture_slot_lag_bytes": 1, "onestop_capture_connected": 1,
        "onestop_webhook_requests_total": 1,
    }
    used = [promql_metric_names(rule["expr"]) for rule in alert_rules()]
    for metric, at_least in by_metric.items():
        assert sum(metric in names for names in used) >= at_least, metric
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    assert 'up{job="onestop-bridge"}' in exprs and 'up{job="onestop-capture"}' in exprs


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = load_yaml(RULE_TESTS)["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a not-firing test"


def test_rule_durations_are_prometheus_durations() -> None:
    for rule in alert_rules():
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", str(rule["for"])), rule["alert"]
