"""A real Prometheus scrapes the running bridge and connector, loads the alert rules, and
every Grafana panel expression and every rule expression returns data.

Debian's /usr/bin/prometheus (Makefile `system-deps`) scrapes both processes every
second. The traffic below makes each metric exist: deliveries on every channel, an SMS
fallback, a dead letter, a retry, a malformed event, a replication reconnect, the
citizen side (when installed) and, last because it leaves Zalo unusable for this
bridge, a refused token refresh.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from events import present
from promql import Operand, concrete, operands
from obs_system import (OA_USER, PHONE_OA, PHONE_RETRY_2, PHONE_SMS, PHONE_ZNS, System,
                    citizen_webhook_installed)
from waiting import wait_for

from bridge.dispatch import SANDBOX_APP_ID, SANDBOX_APP_SECRET
from bridge.embedded import free_port

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "onestop.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "onestop-bridge.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CITIZEN_METRICS = ("onestop_webhook_", "onestop_lookups_", "onestop_followers_linked",
                   "onestop_ratings_", "onestop_feedback_", "onestop_event_to_delivered_")
# Metrics no process that Prometheus scrapes emits yet; each such test is a strict xfail,
# so it turns red (XPASS) the day the gap is closed and this entry must go.
NO_EMITTER: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    expr: str
    operand: Operand


def _panel_checks() -> list[Check]:
    checks = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    expr = concrete(target["expr"])
                    checks.append(Check(f"panel:{panel['title']}:{target.get('refId', '')}", expr,
                                        Operand(expr, must_have_data=True)))

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])
    return checks


def _rule_checks() -> list[Check]:
    checks = []
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                checks.append(Check(f"record:{rule['record']}", rule["expr"],
                                    Operand(rule["expr"], must_have_data=True)))
                continue
            for n, operand in enumerate(operands(rule["expr"])):
                checks.append(Check(f"alert:{rule['alert']}:{n}", rule["expr"], operand))
    return checks


def _marks(check: Check) -> list[pytest.MarkDecorator]:
    for metric, reason in NO_EMITTER.items():
        if metric in check.operand.expr:
            return [pytest.mark.xfail(reason=reason, strict=True)]
    if any(m in check.operand.expr for m in CITIZEN_METRICS) and not citizen_webhook_installed():
        return [pytest.mark.xfail(reason="the citizen webhook (bridge.citizen.routes) is not "
                                         "installed in this build", strict=True)]
    return []


CHECKS = [pytest.param(c, id=c.name, marks=_marks(c)) for c in _panel_checks() + _rule_checks()]


class Prometheus:
    def __init__(self, workdir: Path, system: System) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "onestop-bridge",
                 "static_configs": [{"targets": [f"127.0.0.1:{system.bridge_port}"]}]},
                {"job_name": "onestop-capture",
                 "static_configs": [{"targets": [f"127.0.0.1:{system.capture_port}"]}]},
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def api(self, path: str, **params: Any) -> Any:
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return self.api("query", query=expr, **({"time": at} if at is not None else {}))["result"]

    def has(self, expr: str) -> bool:
        return bool(self.query(expr))

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def prom(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), system)
    try:
        wait_for(server.ready, timeout=30, message="prometheus ready")
        wait_for(lambda: len(server.query('up == 1')) == 2, timeout=30,
                 message="both targets scraped and up")
        drive_traffic(system, server)
        yield server
    finally:
        server.stop()


def drive_traffic(system: System, prom: Prometheus) -> None:
    codes = {}
    for phone in (PHONE_ZNS, PHONE_OA, PHONE_SMS, PHONE_RETRY_2, None):
        codes[phone] = system.insert(status=2, phone=phone)
    system.produce_raw(b"not a change event")
    for phone in (PHONE_ZNS, PHONE_OA, PHONE_SMS):
        system.wait_status(codes[phone][1], "RECEIVED", "sent")
    system.wait_status(codes[None][1], "RECEIVED", "dead")
    replay_dead_letter(system, codes[None][1])
    system.wait_status(codes[PHONE_RETRY_2][1], "RECEIVED", "sent", timeout=40)
    if citizen_webhook_installed():
        citizen_scenes(system, codes[PHONE_OA])
    reconnect_capture(system, prom)
    refuse_token_refresh(system)
    # The last scene's series reached Prometheus: everything before it did too.
    wait_for(lambda: prom.has('onestop_zalo_token_refresh_total{result="failed"}'), timeout=20,
             message="the failed refresh scraped")


def replay_dead_letter(system: System, code: str) -> None:
    """An operator replays the dead letter; the bridge counts the replayed record it takes."""
    result = subprocess.run([sys.executable, "-m", "bridge.cli", "dlq", "replay", "--dossier", code,
                             "--yes"], env=system.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: system.metric("onestop_replayed_total", result="received") >= 1, timeout=30,
             message="the bridge took the replayed record")


def citizen_scenes(system: System, oa_dossier: tuple[int, str]) -> None:
    """Lookup, feedback, a mis-signed request, and a rating after the result is returned."""
    dossier_id, code = oa_dossier
    bad = httpx.post(f"{system.bridge_url}/webhook/zalo", content=b'{"event_name":"follow"}',
                     headers={"X-ZEvent-Signature": "mac=00", "Content-Type": "application/json"})
    assert bad.status_code in (401, 403)
    system.user_event(event_name="user_send_text", user_id=OA_USER, text=code)
    system.user_event(event_name="user_send_text", user_id=OA_USER, text="góp ý Thủ tục nhanh gọn")
    system.set_status(dossier_id, 10)
    system.wait_status(code, "RESULT_RETURNED", "sent")
    sandbox_url = present(system.sandbox).url
    wait_for(lambda: any("#danh-gia" in json.dumps(m, ensure_ascii=False) for m in httpx.get(
        f"{sandbox_url}/sandbox/messages", params={"user_id": OA_USER}).json()),
        timeout=20, message="rating prompt sent to the follower")
    system.user_event(event_name="user_send_text", user_id=OA_USER, text=f"#danh-gia {code} 5")
    wait_for(lambda: system.metric("onestop_ratings_total") >= 1, timeout=20, message="rating")


def reconnect_capture(system: System, prom: Prometheus) -> None:
    """The database drops the connector's replication connection; it reconnects."""
    admin = system.pg.connect(system.prefix)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND active_pid IS NOT NULL", (system.prefix,))
    admin.close()
    wait_for(lambda: prom.has("onestop_capture_reconnects_total"), timeout=45,
             message="the connector's reconnect scraped")
    system.insert(status=2, phone=PHONE_ZNS)  # capture goes on after the reconnect


def refuse_token_refresh(system: System) -> None:
    """Someone else uses the bridge's refresh token (single-use at Zalo), then the access
    token expires: the bridge's refresh is refused and the notice falls back to SMS."""
    assert system.sandbox is not None
    [(refresh,)] = system.ledger_rows("SELECT refresh_token FROM tokens")
    stolen = httpx.post(f"{system.sandbox.url}/v4/oa/access_token",
                        data={"grant_type": "refresh_token", "refresh_token": refresh,
                              "app_id": SANDBOX_APP_ID}, headers={"secret_key": SANDBOX_APP_SECRET})
    assert "access_token" in stolen.json()
    httpx.post(f"{system.sandbox.url}/sandbox/expire-tokens").raise_for_status()
    _, code = system.insert(status=2, phone=PHONE_ZNS)
    assert system.wait_status(code, "RECEIVED", "sent").channel == "sms"
    wait_for(lambda: system.metric("onestop_zalo_token_refresh_total", result="failed") >= 1,
             timeout=10, message="failed refresh counted")
    # The stored access token's expiry still says hours are left; readiness says otherwise.
    ready = httpx.get(f"{system.bridge_url}/readyz", timeout=10)
    assert ready.status_code != 200 and "refused the refresh token" in ready.text, ready.text


def test_rules_file_is_loaded_and_every_rule_evaluates(prom: Prometheus) -> None:
    expected = {r.get("alert") or r.get("record")
                for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]}

    def evaluated() -> dict[str, dict[str, Any]] | None:
        rules = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
        done = all(r.get("lastEvaluation", "").startswith("20") and r["health"] != "unknown"
                   for r in rules.values())
        return rules if done and set(rules) == expected else None

    rules = wait_for(evaluated, timeout=40, interval=0.5, message="every rule evaluated once")
    assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}


@pytest.mark.parametrize("check", CHECKS)
def test_expression_returns_data(prom: Prometheus, check: Check) -> None:
    operand = check.operand
    # A [10m:1m] subquery needs two one-minute steps of history: evaluate two minutes ahead
    # (samples stay visible for 5 minutes), instead of making the test wait for them.
    at = time.time() + 120 if ":" in "".join(_ranges(operand.expr)) else None
    result = prom.query(operand.expr, at)  # raises unless Prometheus parsed it
    if operand.must_have_data:
        if not result:  # a series may need one more scrape or rule evaluation
            result = wait_for(lambda: prom.query(operand.expr, at), timeout=5, interval=0.5,
                              message=f"data for {operand.expr}")
        assert result


def _ranges(expr: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]", expr)
