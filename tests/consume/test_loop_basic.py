"""The consumer loop against the real broker: once-only delivery, commits, DLQ, retries."""

from __future__ import annotations

import pytest
from events import event, row
from loop_harness import FakeDispatcher, Running, create_topics, make_settings, produce
from waiting import wait_for

pytestmark = pytest.mark.services


def dossier(i: int, status: int = 2, **extra) -> dict:
    return event("c", row(id=i, code=f"000.00.23.H39-240612-{i:04d}", status=status, **extra))


def test_each_event_is_delivered_once_and_committed(broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)
    docs = [dossier(i) for i in range(1, 41)]
    produce(broker, topic, docs + docs[:10])  # ten redeliveries
    fake = FakeDispatcher()
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(fake.sent) >= 40, timeout=60, message="40 deliveries")
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    assert sorted(fake.sent_codes()) == sorted(d["after"]["code"] for d in docs)

    # A restart with the same group sees nothing new: offsets were committed.
    again = FakeDispatcher()
    running = Running(settings, again)
    try:
        produce(broker, topic, [dossier(99)])
        wait_for(lambda: len(again.sent) == 1, timeout=60, message="the new event")
    finally:
        running.stop()
    assert again.sent_codes() == ["000.00.23.H39-240612-0099"]


def test_poison_records_go_to_the_dlq_and_the_partition_keeps_flowing(
        broker, unique_name, tmp_path) -> None:
    from loop_harness import header_map, read_all

    topic = unique_name
    create_topics(broker, topic, partitions=1)
    settings = make_settings(broker, topic, tmp_path)
    produce(broker, topic, [b"{not json", dossier(1), dossier(2, status=77), dossier(3)],
            key=lambda d: b'{"id": 1}')
    fake = FakeDispatcher()
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(fake.sent) >= 2, timeout=60, message="the good events")
        wait_for(lambda: len(read_all(broker, topic + ".dlq")) == 2, timeout=30, message="2 DLQ")
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    assert fake.sent_codes() == ["000.00.23.H39-240612-0001", "000.00.23.H39-240612-0003"]
    dead = sorted(read_all(broker, topic + ".dlq"), key=lambda m: int(header_map(m)[
        "onestop.original.offset"]))
    first, second = (header_map(m) for m in dead)
    assert dead[0].value() == b"{not json" and dead[0].key() == b'{"id": 1}'
    assert first["onestop.error.reason"] == "malformed_event"
    assert first["onestop.error.stage"] == "decode"
    assert first["onestop.original.topic"] == topic
    assert (first["onestop.original.partition"], first["onestop.original.offset"]) == ("0", "0")
    assert second["onestop.error.reason"] == "bad_input"
    assert second["onestop.error.class"] == "BadInputError"
    assert "77" in second["onestop.error.message"]
    assert second["onestop.original.offset"] == "2"


def test_companion_topics_are_created_and_only_the_retry_topics_count_is_checked(
        broker, unique_name, caplog: pytest.LogCaptureFixture) -> None:
    """The DLQ is only written: the runbook's one-partition DLQ must not warn at every start;
    a retry topic keyed unlike the source must."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from bridge.consume.topics import Topics

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    retry, dlq = unique_name + ".retry", unique_name + ".dlq"
    admin.create_topics([NewTopic(dlq, num_partitions=1)])[dlq].result(15)
    topics = Topics(admin)
    topics.ensure([retry, dlq], 3, (retry,))
    assert (topics.partitions(retry), topics.partitions(dlq)) == (3, 1)
    assert "different partition count" not in caplog.text
    topics.ensure([retry, dlq], 4, (retry,))
    assert "different partition count" in caplog.text
