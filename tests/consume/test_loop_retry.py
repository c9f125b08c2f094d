"""Deferred and failing deliveries: retry topic, per-dossier order, DLQ after the last round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from events import event, row
from loop_harness import (FakeDispatcher, Running, create_topics, header_map, make_settings,
                          produce, read_all)
from waiting import wait_for

from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.errors import DeferError, RecipientError, TransportError

pytestmark = pytest.mark.services


def doc(i: int, op: str = "c", **changes) -> dict:
    return event(op, row(id=i, code=f"000.00.23.H39-240612-{i:04d}", **changes))


def key(d: dict) -> bytes:
    return f'{{"id": {d["after"]["id"]}}}'.encode()


def test_a_deferred_notification_waits_and_later_ones_of_its_dossier_wait_behind_it(
        broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)

    def script(n, call_no):
        if n.dossier_code.endswith("0001") and n.kind == "RECEIVED" and call_no == 1:
            raise DeferError("night window", until=datetime.now(UTC) + timedelta(seconds=2),
                             code=-133)
        return None

    fake = FakeDispatcher(script=script)
    produce(broker, topic, [doc(1, status=2), doc(2, status=2),
                            doc(1, "u", status=5, note="Bổ sung bản sao CCCD"),
                            doc(1, "u", status=9)], key=key)
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(fake.sent) == 4, timeout=60, message="all four notices")
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    order = [(n.dossier_code[-4:], n.kind) for n in fake.sent]
    assert order[0] == ("0002", "RECEIVED"), "another dossier does not wait"
    assert [k for c, k in order if c == "0001"] == ["RECEIVED", "SUPPLEMENT_REQUESTED",
                                                    "RESULT_READY"]
    retried = [header_map(m) for m in read_all(broker, topic + ".retry")]
    reasons = sorted(hm["onestop.retry.reason"] for hm in retried)
    assert reasons == ["deferred", "parked", "parked"]
    assert all(hm["onestop.original.topic"] == topic for hm in retried)


def test_a_notice_held_till_morning_does_not_hold_up_another_dossiers_retry(
        broker, unique_name, tmp_path) -> None:
    """One retry partition: dossier 1's notice waits for the end of Zalo's night ban (an
    hour here), dossier 2's 503 is retried after 0.5 s — and goes out, while dossier 1's
    later notice stays behind its first."""
    topic = unique_name
    create_topics(broker, topic, partitions=1)
    settings = make_settings(broker, topic, tmp_path)

    def script(n, call_no):
        if n.dossier_code.endswith("0001") and n.kind == "RECEIVED":
            raise DeferError("night window", until=datetime.now(UTC) + timedelta(hours=1), code=-133)
        if n.dossier_code.endswith("0002") and call_no == 1:
            raise TransportError("zns: HTTP 503", code=503)
        return None

    fake = FakeDispatcher(script=script)
    produce(broker, topic, [doc(1, status=2), doc(2, status=2),
                            doc(1, "u", status=5, note="Bổ sung bản sao CCCD")], key=key)
    running = Running(settings, fake)
    try:
        wait_for(lambda: [(n.dossier_code[-4:], n.kind) for n in fake.sent] == [("0002", "RECEIVED")],
                 timeout=60, message="dossier 2's retried notice")
        wait_for(lambda: running.loop.gate.kept() == 2, timeout=20,
                 message="dossier 1's two notices kept, in memory")
        assert all(not n.dossier_code.endswith("0001") for n in fake.sent)
    finally:
        running.stop()


def test_transient_failures_use_every_round_then_dead_letter(broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)  # retry_delays_s = [0.5, 0.5]

    def script(n, call_no):
        if n.dossier_code.endswith("0001"):
            raise TransportError("HTTP 503 from ZNS")
        if n.dossier_code.endswith("0002") and call_no == 1:
            raise TransportError("connection reset")
        return None

    fake = FakeDispatcher(script=script)
    produce(broker, topic, [doc(1, status=2), doc(2, status=2)], key=key)
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(read_all(broker, topic + ".dlq")) == 1, timeout=60, message="DLQ")
        wait_for(lambda: len(fake.sent) == 1, timeout=30)
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    assert fake.sent_codes() == ["000.00.23.H39-240612-0002"]
    first_key = next(k for k in fake.calls if k != fake.sent[0].idempotency_key)
    assert fake.calls[first_key] == 3, "first try + two retry rounds"
    [dead] = read_all(broker, topic + ".dlq")
    hm = header_map(dead)
    assert hm["onestop.error.reason"] == "retries_exhausted"
    assert hm["onestop.error.class"] == "TransportError"
    assert hm["onestop.error.attempts"] == "3"
    assert hm["onestop.kind"] == "RECEIVED"
    assert hm["onestop.dossier-code"] == "000.00.23.H39-240612-0001"
    assert dead.key() == b'{"id": 1}'


def test_permanent_refusals_dead_letter_at_once(broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)
    now = datetime.now(UTC)

    def script(n, call_no):
        if n.dossier_code.endswith("0001"):
            raise RecipientError("no reachable recipient")
        if n.dossier_code.endswith("0002"):
            return DeliveryOutcome("failed", None, None, 0, [
                Attempt("zns", "unreachable", -118, "Zalo account not existed", now),
                Attempt("sms", "unreachable", None, "invalid_phone", now)])
        return None

    fake = FakeDispatcher(script=script)
    produce(broker, topic, [doc(1, status=2), doc(2, status=2), doc(3, status=2)], key=key)
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(read_all(broker, topic + ".dlq")) == 2, timeout=60, message="DLQ")
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    assert fake.sent_codes() == ["000.00.23.H39-240612-0003"]
    reasons = {header_map(m)["onestop.dossier-code"][-4:]: header_map(m)
               for m in read_all(broker, topic + ".dlq")}
    assert reasons["0001"]["onestop.error.reason"] == "no_recipient"
    assert reasons["0002"]["onestop.error.reason"] == "channels_refused"
    assert reasons["0002"]["onestop.error.class"] == "RecipientError"
    assert all(fake.calls[k] == 1 for k in fake.calls), "permanent errors are not retried"
    assert len(read_all(broker, topic + ".retry")) == 0
