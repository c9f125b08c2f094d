"""`kill -9` of the bridge in the middle of a 10,000-message stream, then a restart:
every notice is delivered, duplicates stay within the in-flight bound."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from e2e_harness import (CODE, SandboxWatcher, base_sections, create_topic, free_port, new_bridge,
                         produce, stop_all, unique_topic)
from events import event, row
from waiting import wait_for

from bridge.sandbox import run_in_thread

pytestmark = [pytest.mark.services, pytest.mark.slow]
TOTAL, MAX_IN_FLIGHT = 10_000, 200


def test_kill_9_mid_stream_loses_nothing(broker, tmp_path, capsys) -> None:
    topic = unique_topic("crash")
    create_topic(broker.bootstrap, topic, 4)
    sandbox = run_in_thread(scenario={"rate_limit_per_minute": 10_000_000,
                                      "zns_daily_quota": 1_000_000, "delivery_webhooks": False})
    sections = base_sections(
        broker, topic, f"sqlite:///{tmp_path / 'ledger.db'}", free_port(),
        dispatch={"workers": 8, "max_in_flight": MAX_IN_FLIGHT},
        zalo={"oa_rate_per_minute": 10_000_000}, log={"level": "WARNING"})
    bridge = new_bridge(tmp_path, sandbox.url, sections)
    watcher = SandboxWatcher(sandbox.url)
    produce(broker.bootstrap, topic, [
        event("c", row(id=i, code=CODE.format(i), applicant_phone=f"849{i:08d}", status=2))
        for i in range(1, TOTAL + 1)])
    try:
        started = time.monotonic()
        bridge.start().wait_ready()
        wait_for(lambda: len(watcher.poll()) >= TOTAL * 0.3, timeout=180, interval=0.02,
                 message="30 % delivered")
        bridge.kill9()
        at_kill = len(watcher.poll())
        bridge.start().wait_ready()
        wait_for(lambda: len(watcher.by_tracking()) >= TOTAL, timeout=240, interval=0.5,
                 message="every notice after the restart")
        wait_for(lambda: bridge.metric("onestop_in_flight_notifications") == 0, timeout=60)
        elapsed = time.monotonic() - started
        bridge.terminate()
        counts = watcher.by_tracking()
    finally:
        stop_all(bridge, sandbox)
    duplicates = sum(counts.values()) - len(counts)
    with capsys.disabled():
        print(f"\nkill -9 after {at_kill} of {TOTAL} delivered; {len(counts)} distinct notices, "
              f"{duplicates} duplicate(s) (bound {MAX_IN_FLIGHT}); {elapsed:.1f} s in all")
    assert len(counts) == TOTAL
    assert duplicates <= MAX_IN_FLIGHT
    assert Counter(counts.values()).get(3, 0) == 0, "nothing was sent three times"
