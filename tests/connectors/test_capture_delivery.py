"""A transaction's acknowledgement: heard once, when Kafka has every record of it."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from bridge import metrics
from bridge.errors import ConfigError
from connectors.delivery import Batch, Delivery, DeliveryFailed, KafkaUnavailable, RecordTooLarge


def _batch(records: int) -> tuple[Batch, list[tuple[float, int]]]:
    heard: list[tuple[float, int]] = []
    batch = Batch(1_718_155_800.25, lambda commit_ts, count: heard.append((commit_ts, count)))
    batch.pending = batch.sent = records  # as Delivery.send counts them
    return batch, heard


def _ack(batch: Batch, err: Any = None) -> None:
    batch.on_delivery(err, None)  # type: ignore[arg-type]


def test_heard_when_the_last_record_is_acknowledged_after_the_commit() -> None:
    batch, heard = _batch(3)
    _ack(batch)
    batch.close(500)
    _ack(batch)
    assert heard == []
    _ack(batch)
    assert heard == [(1_718_155_800.25, 3)] and batch.end_lsn == 500


def test_heard_at_the_commit_when_every_record_was_acknowledged_before_it() -> None:
    batch, heard = _batch(2)
    _ack(batch)
    _ack(batch)
    assert heard == []  # the transaction may still have records to come
    batch.close(500)
    assert heard == [(1_718_155_800.25, 2)]


def test_a_refused_record_is_never_heard_as_acknowledged() -> None:
    batch, heard = _batch(2)
    batch.close(500)
    _ack(batch, KafkaError(KafkaError._MSG_TIMED_OUT))
    _ack(batch)
    assert heard == [] and batch.error is not None


def test_records_are_counted_per_table_and_op_whatever_their_order() -> None:
    """Runs of one table and op (a transaction's rows) and every other order; equal names
    that are not the same str object count together."""
    batch, _ = _batch(0)
    table = "public.dossiers"
    for name, op in [(table, "c"), (table, "c"), (table, "u"), ("public.".__add__("dossiers"), "c"),
                     (table, "u"), ("public.other", "c"), (table, "c")]:
        batch.count(name, op)
    assert batch.counts() == {(table, "c"): 4, (table, "u"): 2, ("public.other", "c"): 1}
    batch.count(table, "u")
    assert batch.counts() == {(table, "c"): 4, (table, "u"): 3, ("public.other", "c"): 1}
    assert _batch(0)[0].counts() == {}


def _delivery() -> Delivery:
    return Delivery({"bootstrap.servers": "127.0.0.1:9", "enable.idempotence": True})


def test_a_refused_heartbeat_ends_the_session_and_only_acknowledged_ones_count() -> None:
    """On a quiet stream the heartbeat is the only record: Kafka refusing it must end the
    session (reason "kafka", connected 0) as a transaction's record would; it used to be
    logged and forgotten while the connector reported itself connected."""
    delivery = _delivery()
    counted = metrics.capture_heartbeats._value.get()  # noqa: SLF001
    delivery._heartbeat_done(None, None)  # type: ignore[arg-type]  # noqa: SLF001
    assert metrics.capture_heartbeats._value.get() == counted + 1  # noqa: SLF001
    assert delivery.acked_position() == 0
    delivery._heartbeat_done(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]  # noqa: SLF001
    assert metrics.capture_heartbeats._value.get() == counted + 1  # noqa: SLF001
    with pytest.raises(DeliveryFailed, match="heartbeat"):
        delivery.acked_position()
    refused = delivery.producer
    delivery.recover(DeliveryFailed("Kafka did not accept a heartbeat"), timeout=0.1)
    assert delivery.producer is not refused and delivery.acked_position() == 0


def test_a_producer_that_refuses_to_produce_is_replaced_between_sessions() -> None:
    """After a fatal idempotence error (UNKNOWN_PRODUCER_ID) produce() refuses every record:
    keeping that producer ended every later session the same way until a restart. Kafka
    merely unreachable keeps the producer (and its queued records)."""
    delivery = _delivery()
    unreachable = delivery.producer
    delivery.recover(KafkaUnavailable("Kafka did not answer"), timeout=0.1)
    assert delivery.producer is unreachable
    delivery.recover(KafkaException(KafkaError(KafkaError._FATAL, "Unable to produce message", fatal=True)),
                     timeout=0.1)
    assert delivery.producer is not unreachable


class _Refused:
    """The record confluent-kafka hands a delivery callback with its error."""

    def topic(self) -> str:
        return "onestop.public.dossier_files"

    def key(self) -> bytes:
        return b'{"id":7}'

    def value(self) -> bytes:
        return b"x" * 2_000_000


def test_a_record_the_broker_finds_too_large_stops_capture_with_the_fix() -> None:
    """Retrying would refuse it forever while the slot holds WAL: an operator must act."""
    delivery = Delivery({"bootstrap.servers": "127.0.0.1:9", "message.max.bytes": 5_000_000})
    batch = delivery.open()
    batch.pending = batch.sent = 1
    batch.close(500)
    batch.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), _Refused())  # type: ignore[arg-type]
    with pytest.raises(RecordTooLarge) as stopped:
        delivery.acked_position()
    message = str(stopped.value)
    assert isinstance(stopped.value, ConfigError)  # exit 2: systemd does not restart it
    assert ('onestop.public.dossier_files (key {"id":7}) is 2,000,000 bytes, more than the broker '
            "takes (producer message.max.bytes 5000000)") in message
    assert "max.message.bytes" in message and "ALTER PUBLICATION" in message
    delivery.shutdown(0)


def test_other_refusals_still_end_the_session_to_be_retried() -> None:
    delivery = Delivery({"bootstrap.servers": "127.0.0.1:9"})
    batch = delivery.open()
    batch.pending = batch.sent = 1
    batch.close(500)
    batch.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), _Refused())  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        delivery.acked_position()
    delivery.shutdown(0)


def test_the_wait_on_kafka_counts_from_its_last_acknowledgement_across_sessions(monkeypatch) -> None:
    """`onestop_capture_kafka_unacknowledged_seconds`: 0 while nothing waits or Kafka keeps
    acknowledging (a long transaction's records one by one); growing while records wait with
    none acknowledged; still growing after a session Kafka ended (its records are owed) until
    Kafka acknowledges something again. Batches dropped unfinished are not progress."""
    clock = [1_000.0]
    monkeypatch.setattr("connectors.delivery.time.monotonic", lambda: clock[0])
    delivery = _delivery()

    def at(t: float) -> float | None:
        clock[0] = t
        delivery.track(t)
        return metrics.REGISTRY.get_sample_value("onestop_capture_kafka_unacknowledged_seconds")

    big = delivery.open()
    big.pending = big.sent = 5
    assert at(1_000) == 0  # waiting from now
    _ack(big)
    assert at(1_001) == 0  # acknowledged since: the clock starts again
    assert at(1_004) == 3  # nothing more for 3 s
    for _ in range(4):
        _ack(big)
    big.close(100)
    assert delivery.acked_position() == 100 and at(1_005) == 0  # all in: nothing waits
    stuck = delivery.open()
    stuck.pending = stuck.sent = 2
    assert at(1_006) == 0 and at(1_010) == 4
    delivery.recover(KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)), timeout=0)
    delivery.forget_open()
    assert at(1_020) == 14  # between sessions: owed, still counting
    again = delivery.open()  # the next session re-sends, and Kafka takes it
    again.pending = again.sent = 1
    _ack(again)
    assert at(1_021) == 0


def test_a_stop_while_kafka_is_gone_does_not_wait_out_the_message_timeout() -> None:
    """SIGTERM in the first minutes of an outage: librdkafka's close() held the process until
    every record timed out (2 minutes; systemd kills at 60 s). The slot keeps what Kafka did
    not acknowledge, so dropping the queue loses nothing."""
    import time

    delivery = Delivery({"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 30000})
    batch = delivery.open()
    for n in range(5):
        delivery.send(batch, "t", b"k%d" % n, b"v")
    started = time.monotonic()
    delivery.shutdown(timeout=0.5)
    assert time.monotonic() - started < 5
