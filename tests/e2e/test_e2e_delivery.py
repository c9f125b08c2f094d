"""`onestop-bridge run` as a process: Kafka (kafka-python producer) → ledger → sandbox."""

from __future__ import annotations

from collections import Counter

import pytest
from e2e_harness import (CODE, SandboxWatcher, base_sections, create_topic, free_port, new_bridge,
                         produce, stop_all, unique_topic)
from events import event, row
from waiting import wait_for

from bridge.ledger import Ledger, LedgerFollowers
from bridge.sandbox import run_in_thread
from bridge.templates.sms import sms_parts

pytestmark = pytest.mark.services

FOLLOWER, ZNS_PHONE, NO_ZALO = "84909000001", "84909000002", "84909000003"


def test_each_notice_arrives_once_on_the_cheapest_channel(broker, pg, tmp_path) -> None:
    topic = unique_topic("e2e")
    create_topic(broker.bootstrap, topic, 3)
    ledger_url = pg.create_database("e2e_" + topic.split(".")[0])
    ledger = Ledger.open(ledger_url)
    LedgerFollowers(ledger.engine).link("user-e2e-1", FOLLOWER)  # linked via the OA earlier
    ledger.close()
    sandbox = run_in_thread(scenario={
        "followers": {"user-e2e-1": {"phone": FOLLOWER}},
        "phones": {NO_ZALO: {"has_zalo": False}}})
    bridge = new_bridge(tmp_path, sandbox.url, base_sections(broker, topic, ledger_url, free_port()))
    watcher = SandboxWatcher(sandbox.url)
    phones = {1: FOLLOWER, 2: ZNS_PHONE, 3: NO_ZALO}
    received = [event("c", row(id=i, code=CODE.format(i), applicant_phone=phones[i], status=2))
                for i in phones]
    ready = [event("u", row(id=i, code=CODE.format(i), applicant_phone=phones[i], status=9,
                            finished_at="2024-06-19T03:00:00Z")) for i in phones]
    try:
        bridge.start().wait_ready()
        produce(broker.bootstrap, topic, received + ready)
        wait_for(lambda: len(watcher.poll()) >= 6, timeout=60, message="six notices")
        # The same change events again (a connector restart): nothing new may go out.
        produce(broker.bootstrap, topic, received + ready)
        wait_for(lambda: bridge.metric("onestop_events_consumed_total") >= 12, timeout=60,
                 message="the redeliveries consumed")
        wait_for(lambda: bridge.metric("onestop_in_flight_notifications") == 0, timeout=30)
        assert bridge.terminate() < 8.0 + 2
        messages = watcher.poll()
    finally:
        stop_all(bridge, sandbox)
    assert Counter(m["tracking_id"] for m in messages).most_common(1)[0][1] == 1, "sent twice"
    assert len(messages) == 6
    by_channel = Counter((m["channel"], m["user_id"] or m["phone"]) for m in messages)
    assert by_channel == {("zalo_oa", "user-e2e-1"): 2, ("zns", ZNS_PHONE): 2, ("sms", NO_ZALO): 2}
    assert all(CODE.format(1) in m["text"] for m in messages if m["channel"] == "zalo_oa")

    ledger = Ledger.open(ledger_url)
    try:
        assert ledger.counts() == {"sent": 6}
        with ledger.engine.connect() as conn:
            prices: dict[str, int] = dict(conn.exec_driver_sql(
                "SELECT channel, sum(price_vnd) FROM notifications GROUP BY channel").all())
        # SMS is billed per part: RECEIVED fits one, RESULT_READY takes three.
        parts = [sms_parts(m["text"]) for m in messages if m["channel"] == "sms"]
        assert prices == {"zalo_oa": 0, "zns": 300, "sms": 350 * sum(parts)} and sum(parts) > 2
    finally:
        ledger.close()
