"""Control endpoints, the bounded message log, and the `onestop-bridge sandbox` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bridge.sandbox.messages import MessageLog, MessageRecord

ROOT = Path(__file__).resolve().parents[2]


def test_messages_shape_and_filters(make_sandbox):
    box = make_sandbox({"followers": {"u1": {"phone": "84911000001"}}})
    box.zns("84911000001", tracking_id="a")
    box.zns("84911000002", tracking_id="b")
    box.cs("u1", tracking_id="c")
    box.sms("84911000002", tracking_id="d")
    everything = box.messages()
    assert [m["channel"] for m in everything] == ["zns", "zns", "zalo_oa", "sms"]
    for m in everything:
        assert {"channel", "phone", "user_id", "tracking_id", "text", "template_data", "template_id",
                "message_id", "at"} <= set(m)
    assert [m["tracking_id"] for m in box.messages(phone="84911000002")] == ["b", "d"]
    assert [m["tracking_id"] for m in box.messages(channel="zns", phone="84911000002")] == ["b"]
    assert [m["tracking_id"] for m in box.messages(user_id="u1")] == ["c"]
    assert box.messages(tracking_id="d")[0]["channel"] == "sms"
    assert box.messages(tracking_id="nope") == []
    newest = box.messages(after=str(everything[1]["seq"]))
    assert [m["tracking_id"] for m in newest] == ["c", "d"]
    assert len(box.messages(limit="1")) == 1


def test_reset_restores_the_start_state(make_sandbox):
    box = make_sandbox({"zns_daily_quota": 5, "phones": {"84911000002": {"zns": [-118]}}})
    box.zns("84911000001")
    assert box.zns("84911000002")["error"] == -118
    assert box.http.post("/sandbox/reset").json() == {"ok": True}
    assert box.messages() == []
    stats = box.http.get("/sandbox/stats").json()
    assert stats["tokens_issued"] == 0 and stats["errors_per_code"] == {} and stats["zns_quota"]["remaining"] == 5
    assert box.http.get("/sandbox/refresh-token").json()["refresh_token"] == "sandbox-refresh-0"
    assert box.zns("84911000001")["error"] == -124  # access tokens were forgotten
    box.new_token()
    assert box.zns("84911000002")["error"] == -118  # scripts start over


def test_put_scenario_replaces_rules_but_keeps_tokens_and_messages(sandbox):
    sandbox.zns("84911000001")
    reply = sandbox.put_scenario({"phones": {"84911000001": {"zns": [-119]}}})
    assert reply.status_code == 200 and reply.json()["phones"]["84911000001"]["zns"] == [-119]
    assert sandbox.zns("84911000001")["error"] == -119
    assert len(sandbox.messages()) == 1
    assert sandbox.http.get("/sandbox/scenario").json()["phones"]["84911000001"]["zns"] == [-119]


def test_stats_shape(sandbox):
    sandbox.zns("84911000001")
    stats = sandbox.http.get("/sandbox/stats").json()
    assert stats["requests_per_path"]["/message/template"] == 1
    assert stats["messages"] == {"zalo_oa": 0, "zns": 1, "sms": 0}
    for key in ("errors_per_code", "max_requests_per_60s", "rate_limit_rejections", "tokens_issued", "webhooks"):
        assert key in stats


def test_message_log_is_bounded_and_keeps_indexes_consistent():
    log = MessageLog(max_messages=3)
    for i in range(5):
        log.add(MessageRecord(channel="zns", message_id=f"m{i}", at=0.0, tracking_id="same" if i % 2 else f"k{i}"))
    assert len(log) == 3
    assert [r.message_id for r in log.query()] == ["m2", "m3", "m4"]
    assert log.get("m0") is None and log.get("m4") is not None
    assert [r.message_id for r in log.query(tracking_id="same")] == ["m3"]
    assert log.query(tracking_id="k0") == []
    assert [r.seq for r in log.query(after_seq=3)] == [4, 5]


def _spawn(*args: str) -> subprocess.Popen[str]:
    code = "import sys; from bridge.sandbox.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_cli_serves_until_sigterm(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"phones": {"84911000002": {"zns": [-118]}}, "zns_daily_quota": 7}))
    proc = _spawn("--port", "0", "--scenario", str(scenario), "--app-id", "cli-app", "--oa-secret-key", "k")
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.split()[-1]
        current = httpx.get(f"{url}/sandbox/scenario").json()
        assert current["app_id"] == "cli-app" and current["zns_daily_quota"] == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_cli_rejects_a_bad_scenario(tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text('{"phones": {"84911000002": {"zns": ["explode"]}}}')
    proc = _spawn("--port", "0", "--scenario", str(scenario))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "explode" in err
