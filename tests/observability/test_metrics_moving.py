"""Each bridge metric moves when the system does the thing it counts.

The connector and the bridge run as real processes (tests/observability/obs_system.py);
a row written at the one-stop desk is what starts every scene, and /metrics is read
before and after, as Prometheus would.
"""

from __future__ import annotations

import pytest
from obs_system import PHONE_OA, PHONE_RETRY, PHONE_SMS, PHONE_ZNS, System
from waiting import wait_for

pytestmark = pytest.mark.services
SMS_PRICE, ZNS_PRICE = 350, 150


class Delta:
    """`after - before` of any bridge metric, summed over the samples matching the labels."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.before = system.scrape()

    def __call__(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        after = self.system.scrape()

        def total(samples: dict) -> float:  # type: ignore[type-arg]
            return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)

        return total(after) - total(self.before)


def test_delivered_by_zns(system: System) -> None:
    delta = Delta(system)
    _, code = system.insert(status=2, phone=PHONE_ZNS)
    row = system.wait_status(code, "RECEIVED", "sent")
    assert row.channel == "zns" and row.price_vnd == ZNS_PRICE
    wait_for(lambda: delta("onestop_event_to_sent_seconds_count", channel="zns") == 1, timeout=10,
             message="event_to_sent observed")
    assert delta("onestop_events_consumed_total", op="c") >= 1
    assert delta("onestop_notifications_total", kind="RECEIVED", channel="zns", outcome="sent") == 1
    assert delta("onestop_delivery_attempts_total", channel="zns", result="ok") == 1
    assert delta("onestop_cost_vnd_total", channel="zns") == ZNS_PRICE
    # Saved: what this notice's SMS text (one part) would have cost, less the ZNS.
    assert row.sms_equivalent_vnd == SMS_PRICE
    assert delta("onestop_sms_savings_vnd_total") == SMS_PRICE - ZNS_PRICE
    assert delta("onestop_rate_limit_wait_seconds_count", limiter="zalo_app") >= 1
    scraped = system.scrape()
    assert scraped[("onestop_zns_quota_daily", frozenset())] > 0
    assert scraped[("onestop_zalo_token_expiry_timestamp_seconds", frozenset())] > 0


def test_delivered_free_to_a_follower(system: System) -> None:
    delta = Delta(system)
    _, code = system.insert(status=2, phone=PHONE_OA)
    row = system.wait_status(code, "RECEIVED", "sent")
    assert row.channel == "zalo_oa" and row.sms_equivalent_vnd == SMS_PRICE
    wait_for(lambda: delta("onestop_notifications_total", channel="zalo_oa", outcome="sent") == 1,
             timeout=10, message="OA notification counted")
    assert delta("onestop_cost_vnd_total", channel="zalo_oa") == 0
    assert delta("onestop_sms_savings_vnd_total") == SMS_PRICE


def test_failed_zalo_attempt_falls_back_to_sms_without_savings(system: System) -> None:
    delta = Delta(system)
    _, code = system.insert(status=2, phone=PHONE_SMS)
    row = system.wait_status(code, "RECEIVED", "sent")
    assert (row.channel, row.price_vnd) == ("sms", SMS_PRICE)
    wait_for(lambda: delta("onestop_delivery_attempts_total", channel="sms", result="ok") == 1,
             timeout=10, message="SMS attempt counted")
    assert delta("onestop_delivery_attempts_total", channel="zns", result="unreachable") == 1
    assert delta("onestop_zalo_errors_total", channel="zns", code="-118") == 1
    assert delta("onestop_cost_vnd_total", channel="sms") == SMS_PRICE
    assert delta("onestop_sms_savings_vnd_total") == 0


def test_dead_lettered_when_nobody_can_be_reached(system: System) -> None:
    delta = Delta(system)
    _, code = system.insert(status=2, phone=None)
    system.wait_status(code, "RECEIVED", "dead")
    wait_for(lambda: delta("onestop_dlq_records_total", reason="no_recipient") == 1, timeout=10,
             message="DLQ record counted")
    assert delta("onestop_notifications_total", channel="none", outcome="failed") == 1
    assert delta("onestop_sms_savings_vnd_total") == 0


def test_retried_then_delivered(system: System) -> None:
    delta = Delta(system)
    _, code = system.insert(status=2, phone=PHONE_RETRY)
    row = system.wait_status(code, "RECEIVED", "sent", timeout=40)
    assert row.channel == "zns" and row.rounds == 1
    wait_for(lambda: delta("onestop_notifications_total", channel="zns", outcome="sent") == 1,
             timeout=10, message="retried notification counted once")
    assert delta("onestop_retry_scheduled_total") == 1
    assert delta("onestop_delivery_attempts_total", channel="zns", result="retryable") == 2
    assert delta("onestop_zalo_errors_total", channel="zns", code="-100") == 2
    assert delta("onestop_events_consumed_total", op="c") >= 2  # the original and its retry copy


def test_malformed_event_is_counted_and_dead_lettered(system: System) -> None:
    delta = Delta(system)
    system.produce_raw(b"{this is not a change event")
    wait_for(lambda: delta("onestop_bad_events_total") == 1, timeout=20,
             message="bad event counted")
    wait_for(lambda: delta("onestop_dlq_records_total") == 1, timeout=10,
             message="bad event dead-lettered")


def test_savings_counter_equals_the_ledger(system: System) -> None:
    """After every scene above: the Prometheus counters and the ledger tell the same story."""
    def settled() -> bool:
        [(unsettled,)] = system.ledger_rows("SELECT count(*) FROM notifications "
                                            "WHERE status IN ('pending', 'deferred', 'failed')")
        return unsettled == 0 and system.metric("onestop_in_flight_notifications") == 0

    wait_for(settled, timeout=30, message="every notification settled")
    [(savings,)] = system.ledger_rows(
        "SELECT coalesce(sum(sms_equivalent_vnd - price_vnd), 0) FROM notifications "
        "WHERE status = 'sent' AND channel <> 'sms'")
    assert system.metric("onestop_sms_savings_vnd_total") == savings > 0
    cost = dict(system.ledger_rows("SELECT channel, sum(price_vnd) FROM delivery_attempts "
                                   "WHERE result = 'ok' GROUP BY channel"))
    for channel, vnd in cost.items():
        assert system.metric("onestop_cost_vnd_total", channel=channel) == vnd
    sent = dict(system.ledger_rows("SELECT channel, count(*) FROM notifications "
                                   "WHERE status = 'sent' GROUP BY channel"))
    for channel, count in sent.items():
        assert system.metric("onestop_notifications_total", channel=channel, outcome="sent") == count
