"""Upstream limits as the sandbox observes them: token expiry and the per-minute limit."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from e2e_harness import (CODE, SandboxWatcher, base_sections, create_topic, free_port, new_bridge,
                         produce, stop_all, unique_topic)
from events import event, row
from waiting import wait_for

from bridge.sandbox import run_in_thread

pytestmark = pytest.mark.services


def dossiers(n: int, start: int = 1) -> list[dict]:
    return [event("c", row(id=i, code=CODE.format(i), applicant_phone=f"849{i:08d}", status=2))
            for i in range(start, start + n)]


def test_a_token_expiring_mid_stream_costs_no_message(broker, tmp_path) -> None:
    topic = unique_topic("tok")
    create_topic(broker.bootstrap, topic, 2)
    sandbox = run_in_thread(scenario={"latency_ms": 20})
    sections = base_sections(broker, topic, f"sqlite:///{tmp_path / 'ledger.db'}", free_port())
    bridge = new_bridge(tmp_path, sandbox.url, sections)
    watcher = SandboxWatcher(sandbox.url)
    try:
        bridge.start().wait_ready()
        produce(broker.bootstrap, topic, dossiers(300))
        wait_for(lambda: len(watcher.poll()) >= 60, timeout=60, message="first notices")
        expired = httpx.post(sandbox.url + "/sandbox/expire-tokens", timeout=10).json()
        assert expired["expired"] >= 1
        produce(broker.bootstrap, topic, dossiers(300, start=301))  # surely after the expiry
        wait_for(lambda: len(watcher.poll()) >= 600, timeout=90, message="all 600")
        stats = httpx.get(sandbox.url + "/sandbox/stats", timeout=10).json()
        refreshed = bridge.metric("onestop_zalo_token_refresh_total", result="ok")
        dead = bridge.metric("onestop_dlq_records_total")
        bridge.terminate()
        messages = watcher.poll()
    finally:
        stop_all(bridge, sandbox)
    assert len(messages) == 600 and max(Counter(m["tracking_id"] for m in messages).values()) == 1
    assert {m["channel"] for m in messages} == {"zns"}, "no fallback to SMS for a token problem"
    assert stats["tokens_issued"] >= 2 and refreshed >= 2
    assert stats["errors_per_code"].get("-220", 0) >= 1, "the expiry was actually hit"
    assert dead == 0


@pytest.mark.slow
def test_the_per_minute_limit_is_never_exceeded(broker, tmp_path) -> None:
    topic = unique_topic("rate")
    create_topic(broker.bootstrap, topic, 2)
    limit = 60
    sandbox = run_in_thread(scenario={"rate_limit_per_minute": limit})
    sections = base_sections(broker, topic, f"sqlite:///{tmp_path / 'ledger.db'}", free_port(),
                             zalo={"oa_rate_per_minute": limit})
    bridge = new_bridge(tmp_path, sandbox.url, sections)
    watcher = SandboxWatcher(sandbox.url)
    try:
        bridge.start().wait_ready()
        produce(broker.bootstrap, topic, dossiers(90))
        wait_for(lambda: len(watcher.poll()) >= 90, timeout=150, interval=1.0, message="all 90")
        stats = httpx.get(sandbox.url + "/sandbox/stats", timeout=10).json()
        bridge.terminate()
        messages = watcher.poll()
    finally:
        stop_all(bridge, sandbox)
    assert stats["max_requests_per_60s"] <= limit, stats
    assert stats["rate_limit_rejections"] == 0
    assert len(messages) == 90 and max(Counter(m["tracking_id"] for m in messages).values()) == 1
