"""Producing to Kafka and knowing, per source transaction, when every record is acknowledged.

Records are produced as they are decoded (memory is bounded by librdkafka's queue, not by
transaction size). Each transaction is a `Batch`; delivery callbacks count its records
down. `acked_position()` walks the batches in commit order and returns the end LSN of the
last transaction whose records *and all earlier ones* are acknowledged — the only
position it is safe to confirm to the replication slot.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from bridge import metrics
from bridge.errors import ConfigError, TransportError
from bridge.logs import with_kafka_log
from bridge.settings import KafkaSettings
from connectors.envelope import TableSchema
from connectors.rowjson import Encoder

T = TypeVar("T")
# (source commit time in Unix seconds, records) of each transaction once Kafka has them all.
AckListener = Callable[[float, int], None]
Headers = list[tuple[str, str | bytes | None]]  # as confluent-kafka types produce(headers=)
ANY_PARTITION: Final = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the configured partitioner picks


class KafkaUnavailable(TransportError):
    """Kafka did not answer or refused a request: the capture session starts again."""


class DeliveryFailed(KafkaUnavailable):
    """Kafka refused or timed out a record: replay from the last confirmed position."""


class RecordTooLarge(ConfigError):
    """A change's record is larger than Kafka takes. No retry can send it, and skipping it
    would lose the change: capture stops with the fix, and the slot keeps the change."""

    def __init__(self, topic: str, key: bytes | None, size: int, limit: Any, where: str) -> None:
        shown = key.decode("utf-8", "replace")[:200] if key else "null"
        super().__init__(
            f"a record for {topic} (key {shown}) is {size:,} bytes, more than {where} takes "
            f"(producer message.max.bytes {limit}); capture stops here, the slot keeps the "
            f"change. Either raise the limits — [kafka.extra] \"message.max.bytes\" for the "
            f"producer, and the topic's max.message.bytes on the broker — or leave the large "
            f"column out of the publication (PostgreSQL 15+: ALTER PUBLICATION … SET TABLE "
            f"<table> (<the other columns>)), then start capture again")


def _size_refused(err: object) -> bool:
    """Kafka's answer, or the KafkaException carrying it: the record is too large?"""
    if isinstance(err, KafkaException) and err.args:
        err = err.args[0]
    return isinstance(err, KafkaError) and err.code() == KafkaError.MSG_SIZE_TOO_LARGE


def patiently(ask: Callable[[float], T], timeout: float, stop: threading.Event | None,
              on_silence: Callable[[KafkaException, float], None] | None = None) -> T:
    """`ask(seconds)` of Kafka a second at a time until it answers, `timeout` passes (its
    KafkaException raised) or `stop` is set: a signal's handler (SIGTERM) runs only between
    two C calls. `on_silence(exc, seconds left)` after each unanswered one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ask(min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise
            if on_silence is not None:
                on_silence(exc, deadline - time.monotonic())


def kafka_failure(exc: BaseException | None) -> bool:
    """Kafka, not the source, ended the session: what `reconnects{reason="kafka"}` counts."""
    return isinstance(exc, (KafkaUnavailable, KafkaException))


class Batch:
    """The in-flight records of one source transaction (or the snapshot, or one message)."""

    __slots__ = ("end_lsn", "pending", "sent", "closed", "error", "refused", "commit_ts", "_counts",
                 "_table", "_op", "_run", "listener", "callback")

    def __init__(self, commit_ts: float | None, listener: AckListener | None) -> None:
        self.end_lsn = 0
        self.pending = 0
        self.sent = 0
        self.closed = False
        self.error: KafkaError | None = None
        self.refused: Message | None = None  # the record of `error`, for the report
        self.commit_ts = commit_ts  # Unix seconds of the source commit, for latency
        self._counts: dict[tuple[str, str], int] = {}
        # The latest (table, op) and how many records in a row had it: a transaction's rows
        # of one table and op add to an integer instead of updating a dict each.
        self._table, self._op, self._run = "", "", 0
        self.listener = listener
        self.callback = self.on_delivery  # one bound method for all records of the batch

    def count(self, table: str, op: str) -> None:
        """One more record for the events metric of `table` and `op`."""
        # Identity: the same str objects (a table's name, an op's literal) come row after row.
        if op is self._op and table is self._table:
            self._run += 1
        else:
            self.counts()
            self._table, self._op, self._run = table, op, 1

    def counts(self) -> dict[tuple[str, str], int]:
        """Records per (table, op)."""
        if self._run:
            label = (self._table, self._op)
            self._counts[label] = self._counts.get(label, 0) + self._run
            self._run = 0
        return self._counts

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.error, self.refused = err, _msg
        elif self.pending == 0 and self.closed:
            self.acknowledged()

    def close(self, end_lsn: int) -> None:
        self.end_lsn = end_lsn
        self.closed = True
        if self.pending == 0:  # acknowledged before its commit was read, or empty
            self.acknowledged()

    def acknowledged(self) -> None:
        """Every record of the closed batch is acknowledged: tell the listener, once."""
        if self.sent and self.error is None:  # the age operators watch counts what Kafka holds
            metrics.last_capture.mark()
        if self.listener is not None and self.commit_ts is not None and self.error is None:
            self.listener(self.commit_ts, self.sent)


def producer_config(kafka: KafkaSettings, client_suffix: str = "capture") -> dict[str, Any]:
    config: dict[str, Any] = with_kafka_log({
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": f"{kafka.client_id}-{client_suffix}",
        # Idempotence gives acks=all, in-order retries without duplicates inside one session.
        "enable.idempotence": True,
        "acks": "all",
        # Java's partitioner: a key lands on the partition Debezium/Kafka Connect would pick,
        # so per-key order holds when a deployment switches between the two connectors.
        "partitioner": "murmur2_random",
        # 20 ms, not librdkafka's 5: at a backlog's 150,000 rows/s the batches are four times
        # larger, and librdkafka and the broker spend ~2 µs less CPU per row (bench/capture.py:
        # 0.5 + 2.0 µs against 1.5 + 3.0). Beside the database that is CPU the walsender
        # needs. It costs no latency: once the server has sent all there is, `send_now` sends.
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 100000,
        "queue.buffering.max.kbytes": 32768,  # bounds memory in huge transactions
        # Kafka's own producer default (delivery.timeout.ms), not librdkafka's 5 minutes: a
        # record Kafka has not taken in 2 minutes ends the session, so a broker outage shows
        # as onestop_capture_connected 0 sooner; the new session replays from the slot.
        "message.timeout.ms": 120000,
    })
    config.update(kafka.extra_for("producer"))
    return config


class Delivery:
    """One idempotent producer plus the ledger of in-flight batches."""

    def __init__(self, config: dict[str, Any], on_wait: Callable[[], None] | None = None,
                 ack_listener: AckListener | None = None) -> None:
        self._config = config
        self.producer = Producer(config)
        self.on_wait = on_wait  # called while blocked on a full queue (replication keepalives)
        self.ack_listener = ack_listener
        self._batches: deque[Batch] = deque()
        self._acked = 0
        self._since_poll = 0
        self._heartbeat_error: KafkaError | None = None
        # Has Kafka acknowledged anything lately (`track`)? Records of retired or dropped
        # batches, heartbeats sent and answered, and a resend owed after a Kafka failure.
        self._retired = 0
        self._beats_sent = 0
        self._beats_answered = 0  # acknowledged or refused
        self._acked_seen = 0
        self._owed = False
        self._waiting_since: float | None = None
        metrics.capture_kafka_unacknowledged.set_function(self.unacknowledged_s)

    def open(self, commit_ts: float | None = None) -> Batch:
        batch = Batch(commit_ts, self.ack_listener)
        self._batches.append(batch)
        return batch

    def send(self, batch: Batch | None, topic: str, key: bytes | None, value: bytes | None,
             count: tuple[str, str] | None = None, headers: Headers | None = None) -> None:
        """One record of `batch`, or with no batch a heartbeat (`_heartbeat_done`)."""
        if batch is None:
            self._beats_sent += 1
        callback = batch.callback if batch is not None else self._heartbeat_done
        try:
            if headers is None:
                # Positional: a keyword argument costs a dict per call (~0.3 µs of ~3.7 per row).
                self.producer.produce(topic, value, key, ANY_PARTITION, callback)
            else:
                self.producer.produce(topic, value, key, ANY_PARTITION, callback, headers=headers)
        except BufferError:
            self._produce_when_room(topic, key, value, callback, headers)
        except KafkaException as exc:
            if _size_refused(exc):
                raise self._too_large(topic, key, value, "the producer") from None
            raise
        self._sent(batch)
        if batch is not None and count is not None:
            batch.count(count[0], count[1])

    def send_row(self, batch: Batch, table: TableSchema, encoder: Encoder, payload: bytes,
                 frame: tuple[bytes, ...], lsn: int, op: str) -> bool:
        """An insert's or update's record encoded and produced by the native path
        (`rowjson`) in one call; False, with nothing sent, when the row needs the Python path."""
        try:
            if not encoder.produce(payload, frame, lsn, self.producer, table.topic, batch.callback):
                return False
        except BufferError:  # queue full: the same record, once there is room
            encoded = encoder.encode(payload, frame, lsn)
            assert encoded is not None, "encoded a moment ago"
            self._produce_when_room(table.topic, encoded[1], encoded[0], batch.callback, None)
        except KafkaException as exc:
            if not _size_refused(exc):
                raise
            encoded = encoder.encode(payload, frame, lsn)  # for the report: topic, key, size
            assert encoded is not None, "encoded a moment ago"
            raise self._too_large(table.topic, encoded[1], encoded[0], "the producer") from None
        self._sent(batch)
        batch.count(table.full_name, op)
        return True

    def _too_large(self, topic: str, key: bytes | None, value: bytes | None,
                   where: str) -> RecordTooLarge:
        limit = self._config.get("message.max.bytes", "1000000, the default")
        return RecordTooLarge(topic, key, len(value or b""), limit, where)

    def _heartbeat_done(self, err: KafkaError | None, _msg: Message) -> None:
        """A record outside any transaction (a heartbeat): the only one on a quiet stream, so
        Kafka refusing it must end the session as a transaction's record would."""
        self._beats_answered += 1
        if err is None:
            metrics.capture_heartbeats.inc()
        else:
            self._heartbeat_error = err

    def _sent(self, batch: Batch | None) -> None:
        if batch is not None:
            batch.pending += 1
            batch.sent += 1
        self._since_poll += 1
        if self._since_poll >= 256:
            self._since_poll = 0
            self.producer.poll(0)

    def _produce_when_room(self, topic: str, key: bytes | None, value: bytes | None,
                           callback: Callable[[KafkaError | None, Message], None],
                           headers: Headers | None) -> None:
        """Queue full: serve callbacks until there is room, keeping the source connection alive."""
        while True:
            self.producer.poll(0.05)
            if self.on_wait is not None:
                self.on_wait()
            try:
                self.producer.produce(topic, value, key, ANY_PARTITION, callback, headers=headers)
                return
            except BufferError:
                continue
            except KafkaException as exc:
                if _size_refused(exc):
                    raise self._too_large(topic, key, value, "the producer") from None
                raise

    def poll(self, timeout: float = 0.0) -> None:
        self.producer.poll(timeout)

    def send_now(self, timeout: float) -> None:
        """The source has nothing more for now: send what waits for `linger.ms` at once (a
        flush does not linger) and serve the answers as they come, for up to `timeout`."""
        self.producer.flush(timeout)

    def acked_position(self) -> int:
        """End LSN of the last fully acknowledged transaction with nothing unacked before it."""
        if self._heartbeat_error is not None:
            raise DeliveryFailed(f"Kafka did not accept a heartbeat: {self._heartbeat_error}")
        batches = self._batches
        while batches:
            head = batches[0]
            if head.error is not None:
                refused = head.refused
                if _size_refused(head.error) and refused is not None:  # the broker's limit
                    raise self._too_large(refused.topic() or "?", refused.key(), refused.value(),
                                          "the broker")
                raise DeliveryFailed(f"Kafka did not accept a record: {head.error}")
            if not head.closed or head.pending > 0:
                break
            batches.popleft()
            self._retired += head.sent
            for (table, op), n in head.counts().items():
                metrics.capture_events.labels(table=table, op=op).inc(n)
            self._acked = max(self._acked, head.end_lsn)
        return self._acked

    def waiting(self) -> int:
        """Records queued or in flight in librdkafka."""
        return len(self.producer)

    def track(self, now: float) -> None:
        """About once a second: note whether Kafka acknowledged anything since the last look,
        for `unacknowledged_s` (a broker that takes connections but no records shows nowhere
        else until `message.timeout.ms` ends the session, and then again in the next one)."""
        acked = self._retired + self._beats_answered + sum(b.sent - b.pending for b in self._batches)
        waiting = self._owed or self._beats_sent > self._beats_answered \
            or any(b.pending for b in self._batches)
        if acked > self._acked_seen:
            self._acked_seen, self._owed = acked, False
            self._waiting_since = now if waiting else None
        elif not waiting:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now

    def unacknowledged_s(self) -> float:
        since = self._waiting_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def reachable(self, stop: threading.Event, timeout: float = 10.0) -> None:
        """After Kafka ended a session: KafkaUnavailable until it answers again, so that the
        next session does not stream (and call itself connected) into a broker that is gone."""
        try:
            patiently(lambda seconds: self.producer.list_topics(timeout=seconds), timeout, stop)
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka does not answer: {exc}") from exc

    def idle(self) -> bool:
        """True when no record is in flight and no transaction is open."""
        return not self._batches

    def in_flight(self) -> int:
        return sum(b.pending for b in self._batches)

    def drain(self, timeout: float) -> bool:
        """Wait for every produced record to be acknowledged (or fail); True when all done."""
        deadline = time.monotonic() + timeout
        while self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic()))) > 0:
            if self.on_wait is not None:
                self.on_wait()
            if time.monotonic() >= deadline:
                return False
        return True

    def shutdown(self, timeout: float = 10.0) -> None:
        """Flush what is left and release the producer's threads and sockets."""
        try:
            if self.producer.flush(timeout) > 0:
                # close() would hold each record until message.timeout.ms (2 minutes, past
                # systemd's stop timeout); what Kafka has not acknowledged is not confirmed to
                # the slot, so the next start sends it again.
                self.producer.purge()
                self.producer.flush(0)
            self.producer.close()
        except (RuntimeError, AttributeError):  # already closed / older client without close()
            pass

    def forget_open(self) -> None:
        """Drop unfinished transactions after a lost source connection: they will be replayed."""
        self._drop([b for b in self._batches if not b.closed])
        self._batches = deque(b for b in self._batches if b.closed)

    def _drop(self, batches: list[Batch]) -> None:
        """Batches leaving the ledger unfinished: what Kafka acknowledged of them stays counted
        (`track`), and what it did not is owed."""
        self._retired += sum(b.sent - b.pending for b in batches)
        self._owed = self._owed or any(b.pending or b.error is not None for b in batches)

    def reset_position(self) -> None:
        """A new slot means a new LSN history: forget everything acknowledged before."""
        self._drop(list(self._batches))
        self._batches.clear()
        self._acked = 0

    def recover(self, exc: BaseException | None, timeout: float = 10.0) -> None:
        """After a session ended with `exc`: let in-flight records settle, and replace the
        producer if it can no longer be trusted — a record was refused, or produce() itself
        refused (e.g. a fatal idempotence error such as UNKNOWN_PRODUCER_ID, after which it
        refuses every record, so each new session would end the same way)."""
        self.on_wait = None  # the ended session's source is closed: nothing to keep alive
        self.drain(timeout)
        self._owed = self._owed or kafka_failure(exc)
        try:
            self.acked_position()
            trusted = not isinstance(exc, KafkaException)
        except DeliveryFailed:
            trusted = False
        if not trusted:
            self.recreate()

    def recreate(self) -> None:
        """After a delivery failure an idempotent producer must be replaced."""
        try:
            self.producer.purge()
            self.producer.flush(5)
        except Exception:  # noqa: BLE001 - best effort on a producer we are discarding
            pass
        self.producer = Producer(self._config)
        self._drop(list(self._batches))
        self._batches.clear()
        self._beats_sent = self._beats_answered  # the purged ones are answered by no one now
        self._heartbeat_error = None
