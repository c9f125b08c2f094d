"""Each error class behaves as classified; poison goes to the DLQ while the partition
flows; a replay after the fix delivers exactly once (a second replay sends nothing)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from e2e_harness import (CODE, SandboxWatcher, base_sections, create_topic, free_port, new_bridge,
                         produce, stop_all, unique_topic)
from events import event, present, row
from waiting import wait_for

from bridge.dlq import cli as dlq_cli
from bridge.pipeline import Pipeline, idempotency_key
from bridge.sandbox import run_in_thread
from bridge.settings import Settings

pytestmark = pytest.mark.services

TRANSIENT, REFUSED, DEFERRED, FINE = "84909100001", "84909100002", "84909100006", "84909100007"


def dossier(i: int, phone: str | None, op: str = "c", **changes) -> dict:
    return event(op, row(id=i, code=CODE.format(i), applicant_phone=phone, **changes))


def key_of(document: dict, kind: str) -> str:
    pipeline = Pipeline(Settings())
    return idempotency_key(pipeline.event_id(present(pipeline.decode(json.dumps(document)))), kind)


def dlq_list(config: str, capsys) -> list[dict]:
    capsys.readouterr()
    assert dlq_cli.main(["--config", config, "list", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_error_classes_dlq_and_replay(broker, tmp_path, capsys) -> None:
    topic = unique_topic("err")
    create_topic(broker.bootstrap, topic, 1)  # one partition: poison sits in front of others
    scenario = {"phones": {TRANSIENT: {"zns": ["http_503"] * 4},
                           REFUSED: {"has_zalo": False, "sms": [400]},
                           DEFERRED: {"has_zalo": False, "sms": [429]}}}
    sandbox = run_in_thread(scenario=scenario)
    sections = base_sections(broker, topic, f"sqlite:///{tmp_path / 'ledger.db'}", free_port())
    bridge = new_bridge(tmp_path, sandbox.url, sections)
    watcher = SandboxWatcher(sandbox.url)
    config = str(bridge.config)
    try:
        bridge.start().wait_ready()
        docs: list[Any] = [
            b"\x00 not a change event",                                 # malformed
            dossier(1, TRANSIENT, status=2),                            # 503 ×4 → retry round
            dossier(2, REFUSED, status=2),                              # -118, SMS 400 → DLQ
            dossier(3, "12345", status=2),                              # invalid phone → DLQ
            dossier(4, FINE, status=77),                                # unknown status → DLQ
            dossier(6, DEFERRED, status=2),                             # SMS 429 → deferred
            dossier(6, DEFERRED, "u", status=9, finished_at="2024-06-19T03:00:00Z"),
            dossier(7, FINE, status=2),                                 # behind all of it
        ]
        produce(broker.bootstrap, topic, docs)
        wait_for(lambda: len(watcher.poll()) >= 4, timeout=60, message="four deliveries")
        wait_for(lambda: len(dlq_list(config, capsys)) == 4, timeout=30, message="four in DLQ")
        dead = {d["reason"]: d for d in dlq_list(config, capsys)}
        assert set(dead) == {"malformed_event", "channels_refused", "no_recipient", "bad_input"}
        assert dead["channels_refused"]["dossier_code"] == CODE.format(2)
        assert dead["no_recipient"]["error_class"] == "RecipientError"
        assert dead["bad_input"]["error_class"] == "BadInputError"
        assert dead["malformed_event"]["original"]["offset"] == 0
        assert bridge.metric("onestop_dlq_records_total") == 4
        assert bridge.metric("onestop_retry_scheduled_total") >= 2
        assert bridge.metric("onestop_bad_events_total", reason="malformed_event") == 1

        sent = watcher.poll()
        by_phone = Counter((m["channel"], m["phone"]) for m in sent)
        assert by_phone == {("zns", TRANSIENT): 1, ("sms", DEFERRED): 2, ("zns", FINE): 1}
        deferred = [m["tracking_id"] for m in sent if m["phone"] == DEFERRED]
        assert deferred == [key_of(docs[5], "RECEIVED"), key_of(docs[6], "RESULT_READY")], \
            "the later notice of a deferred dossier waited behind the earlier one"

        # The operator fixes the cause (the citizen registered Zalo) and replays twice.
        fixed = {**scenario, "phones": {**scenario["phones"], REFUSED: {"has_zalo": True}}}
        httpx.put(sandbox.url + "/sandbox/scenario", json=fixed, timeout=10).raise_for_status()
        for _ in range(2):
            assert dlq_cli.main(["--config", config, "replay", "--error", "channels_refused",
                                 "--yes"]) == 0
        wait_for(lambda: any(m["phone"] == REFUSED for m in watcher.poll()), timeout=60,
                 message="the replayed notice")
        wait_for(lambda: bridge.metric("onestop_events_consumed_total",
                                       topic=topic) >= 10, timeout=30)
        wait_for(lambda: bridge.metric("onestop_in_flight_notifications") == 0, timeout=30)
        bridge.terminate()
        final = watcher.poll()
    finally:
        stop_all(bridge, sandbox)
    assert Counter(m["phone"] for m in final)[REFUSED] == 1, "replayed twice, delivered once"
    assert max(Counter(m["tracking_id"] for m in final).values()) == 1
