"""The connector's durable record of snapshot completion: topic `<topic_prefix>.offsets`.

Why Kafka and not a local file: the record then lives and dies with the data it
describes (a wiped cluster means "snapshot again", which is exactly right), and a
container restarted without a volume does not redo a finished snapshot. The streaming
position itself is not stored here: it is the replication slot's confirmed_flush_lsn,
advanced only for acknowledged transactions. What is stored is a bound on it
(`ConfirmLimit`): the slot is never confirmed past the last bound Kafka acknowledged, so a
slot found ahead of it was moved, or re-created, by someone else.

Record layout follows Kafka Connect's offset topic: key ``["onestop-capture",
{"server": <prefix>}]``, value a JSON object. The latest record for the key wins.

Like Kafka Connect's offsets topic, the topic is created compacted, with 25 partitions
and the broker's replication factor, and an existing one must keep its records: under a
time-based `cleanup.policy=delete` (what auto-creation gives, 7 days by default) the
completion record expires, and the first restart after that snapshots every table again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, TopicMetadata

from bridge.errors import ConfigError
from bridge.logs import with_kafka_log
from bridge.settings import KafkaSettings
from connectors.delivery import ANY_PARTITION, KafkaUnavailable, patiently
from connectors.pgoutput import int_to_lsn

log = logging.getLogger("onestop.capture.offsets")
CONNECTOR_NAME = "onestop-capture"
KAFKA_DEFAULT_RETENTION_MS = 604_800_000  # what a topic without its own retention.ms keeps
# Kafka Connect's default for its offsets topic. One key needs one partition; with one, the
# tansu broker the tests and bench run on fell into a slow mode in most capacity rounds
# (bench/capture.py: ~70,000 instead of ~170,000 rows/s; unexplained, see docs/connectors.md).
PARTITIONS = 25


class BoundSink(Protocol):
    """What writing the confirmation bound needs of the connector's producer."""

    def produce(self, topic: str, value: bytes, key: bytes, partition: int,
                callback: Callable[[KafkaError | None, Any], None], /) -> None: ...

    def flush(self, timeout: float, /) -> int: ...


class OffsetStore:
    def __init__(self, kafka: KafkaSettings, producer_conf: dict[str, Any], prefix: str) -> None:
        self.topic = f"{prefix}.offsets"
        self.key = json.dumps([CONNECTOR_NAME, {"server": prefix}], separators=(",", ":")).encode()
        self._conf = producer_conf
        self._reader_conf = with_kafka_log({
            "bootstrap.servers": kafka.bootstrap_servers, "client.id": producer_conf["client.id"],
            **kafka.extra_for("consumer"),
            "group.id": f"{CONNECTOR_NAME}-offsets-reader", "enable.auto.commit": False,
            "enable.partition.eof": True})
        self._admin_conf = with_kafka_log({"bootstrap.servers": kafka.bootstrap_servers,
                                           "client.id": producer_conf["client.id"],
                                           **kafka.extra_for("producer")})
        self._prepared = False
        self._silence_said = False  # "Kafka does not answer" logged in this outage
        self.record: dict[str, Any] | None = None  # the latest one read or written
        # An incremental snapshot's progress (connectors/incremental.py), in every record written.
        self.incremental: dict[str, Any] | None = None

    def recheck(self) -> None:
        """Kafka failed a session: check the topic again at the next `prepare`."""
        self._prepared = False

    def prepare(self, timeout: float = 15.0, stop: threading.Event | None = None) -> None:
        """Create the topic compacted if it is missing; refuse one whose record would expire.

        Raises KafkaUnavailable while Kafka cannot be reached, ConfigError for a topic that
        deletes old records or cannot be created.
        """
        if self._prepared:
            return
        consumer = Consumer(self._reader_conf)
        try:
            topic = self._describe(consumer, timeout, stop)
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot describe {self.topic}: {exc}") from exc
        finally:
            consumer.close()
        admin = AdminClient(self._admin_conf)
        if topic is None or (topic.error is not None
                             and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            self._create(admin, timeout)
        elif topic.error is not None:
            raise KafkaUnavailable(f"cannot describe {self.topic}: {topic.error}")
        else:
            self._check_retention(admin, timeout)
        self._prepared = True

    def _create(self, admin: AdminClient, timeout: float) -> None:
        new = NewTopic(self.topic, num_partitions=PARTITIONS, replication_factor=-1,
                       config={"cleanup.policy": "compact"})
        try:
            admin.create_topics([new], request_timeout=timeout)[self.topic].result(timeout)
            log.info("created topic %s (compacted, %d partitions)", self.topic, PARTITIONS)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                self._check_retention(admin, timeout)  # created meanwhile, by whom and how?
                return
            if isinstance(error, KafkaError) and error.retriable():
                raise KafkaUnavailable(f"cannot create {self.topic}: {exc}") from exc
            raise ConfigError(
                f"cannot create topic {self.topic} ({exc}); create it compacted: kafka-topics.sh "
                f"--create --topic {self.topic} --partitions {PARTITIONS} --config cleanup.policy=compact"
            ) from None

    def _check_retention(self, admin: AdminClient, timeout: float) -> None:
        resource = ConfigResource(ConfigResource.Type.TOPIC, self.topic)
        try:
            configs = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
        except KafkaException as exc:  # e.g. no DescribeConfigs permission: say so, go on
            log.warning("cannot check that topic %s keeps its records (%s): it must be compacted, "
                        "or the snapshot is redone once its record expires", self.topic, exc)
            return
        policy = configs["cleanup.policy"].value if "cleanup.policy" in configs else "delete"
        retention = configs["retention.ms"].value if "retention.ms" in configs else None
        retention_ms = int(retention) if retention else KAFKA_DEFAULT_RETENTION_MS
        if {p.strip() for p in policy.split(",")} == {"compact"} or retention_ms < 0:
            return
        raise ConfigError(
            f"topic {self.topic} deletes records after {retention_ms / 86_400_000:g} days "
            f"(cleanup.policy={policy}): the snapshot-completion record would expire and the next "
            f"restart would snapshot every table again. Make it compacted: kafka-configs.sh "
            f"--bootstrap-server {self._admin_conf['bootstrap.servers']} --alter --entity-type topics "
            f"--entity-name {self.topic} --add-config cleanup.policy=compact")

    def load(self, timeout: float = 15.0, stop: threading.Event | None = None) -> dict[str, Any] | None:
        """The latest offsets record for this connector, or None if there is none."""
        consumer = Consumer(self._reader_conf)
        try:
            topic = self._describe(consumer, timeout, stop)
            if topic is None or topic.error is not None or not topic.partitions:
                return None
            latest: dict[str, Any] | None = None
            for partition in topic.partitions:
                latest = self._read_partition(consumer, partition, timeout) or latest
            self.record = latest
            self.incremental = (latest or {}).get("incremental")
            return latest
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot read {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def _describe(self, consumer: Consumer, timeout: float,
                  stop: threading.Event | None) -> TopicMetadata | None:
        """The topic's metadata (`patiently`: a stop is not held by an unreachable Kafka)."""
        def silent(exc: KafkaException, left: float) -> None:
            if not self._silence_said:  # once per outage, not per session attempt
                log.warning("Kafka (%s) does not answer yet: %s; still trying for %.0f s",
                            self._reader_conf["bootstrap.servers"], exc, left)
                self._silence_said = True

        topics = patiently(lambda seconds: consumer.list_topics(self.topic, timeout=seconds).topics,
                           timeout, stop, silent)
        self._silence_said = False
        return topics.get(self.topic)

    def _read_partition(self, consumer: Consumer, partition: int, timeout: float) -> dict[str, Any] | None:
        low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                   timeout=timeout)
        if high <= low:
            return None
        # The last record is ours in a topic of its own: no need to read a long history of bounds.
        seen, latest = self._scan(consumer, partition, high - 1, high, timeout)
        if not seen:
            seen, latest = self._scan(consumer, partition, OFFSET_BEGINNING, high, timeout)
        # An assigned partition keeps a long-poll fetch in flight, which the next partition's
        # watermark request would wait behind (~0.5 s each, 25 partitions).
        consumer.unassign()
        return latest

    def _scan(self, consumer: Consumer, partition: int, start: int, high: int,
              timeout: float) -> tuple[bool, dict[str, Any] | None]:
        """(seen, value) of this connector's last record in [start, high); a tombstone (how
        an operator deletes the record) counts as none."""
        consumer.assign([TopicPartition(self.topic, partition, start)])
        seen, latest = False, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error, value, offset = msg.error(), msg.value(), msg.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                raise KafkaUnavailable(f"reading {self.topic}: {error}")
            if msg.key() == self.key:
                seen, latest = True, json.loads(value) if value else None
            if offset is not None and offset >= high - 1:
                break
        else:
            raise KafkaUnavailable(f"timed out reading {self.topic}[{partition}]")
        return seen, latest

    def save(self, value: dict[str, Any], timeout: float = 30.0) -> None:
        """Write synchronously: returns only once Kafka acknowledged the record."""
        value = self._with_progress(value)
        producer = Producer(self._conf)
        errors: list[Any] = []
        producer.produce(self.topic, key=self.key, value=json.dumps(value).encode(),
                         on_delivery=lambda err, _m: errors.append(err))
        remaining = producer.flush(timeout)
        if remaining or errors[0] is not None:
            raise KafkaUnavailable(f"could not write {self.topic}: {errors or 'timeout'}")
        self.record = value
        log.info("offsets saved to %s: %s", self.topic, value)

    def save_limit(self, producer: BoundSink, limit: int, on_done: Callable[[int | None], None]) -> None:
        """Without waiting: the latest record with a new confirmation bound. `on_done(limit)`
        once Kafka has it, `on_done(None)` if it refused; `producer` is the connector's own,
        whose callbacks the stream polls."""
        value = self._with_progress({**(self.record or {}), "confirm_limit": limit,
                                     "confirm_limit_text": int_to_lsn(limit)})

        def report(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                self.record = value
            else:
                log.warning("could not write the confirmation bound to %s: %s", self.topic, err)
            on_done(None if err else limit)

        producer.produce(self.topic, json.dumps(value).encode(), self.key, ANY_PARTITION, report)

    def _with_progress(self, value: dict[str, Any]) -> dict[str, Any]:
        value = {k: v for k, v in value.items() if k != "incremental"}
        if self.incremental:
            value["incremental"] = self.incremental
        return value


class ConfirmLimit:
    """How far the replication slot may be confirmed: a bound Kafka holds before the slot
    is told.

    A slot re-created under the connector's name — by hand, or at a failover by Patroni's
    permanent slots (PostgreSQL ≤ 16 does not copy logical slots to standbys) — starts at
    the server's position of that moment, and the changes made in between would be missing
    from Kafka without a trace (debezium.md §4, problem 4). Confirming only up to a bound
    written first makes that visible: our slot is never ahead of the last acknowledged bound.
    """

    ANSWER_WITHIN_S = 30.0  # a bound unanswered this long (producer replaced) is asked again

    def __init__(self, store: OffsetStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled  # snapshot_mode=no_data keeps no record to hold the bound
        self.acked = 0  # the bound Kafka has; 0 = none known
        self._asked_at: float | None = None  # while a bound is on its way

    def loaded(self, record: dict[str, Any] | None) -> None:
        """The bound of a record read at start-up or written after a snapshot. One written by
        an earlier version has none: nothing is known until the first bound is written."""
        self.acked = int((record or {}).get("confirm_limit") or 0)

    def passed_by(self, slot_position: int | None) -> bool:
        """The slot is ahead of every bound this connector wrote: someone else moved it."""
        return self.enabled and self.acked > 0 and slot_position is not None and slot_position > self.acked

    @property
    def active(self) -> bool:
        return self.enabled and self.store.record is not None

    def allow(self, position: int, producer: BoundSink) -> int:
        """`position` capped at the acknowledged bound; when it passes the bound, asks Kafka
        to hold `position` as the next one. The bound is exact, not the server's WAL end:
        a slot re-created anywhere past what Kafka has must be noticed, even in a backlog."""
        if not self.active:
            return position
        if position > self.acked:
            now = time.monotonic()
            # One bound at a time: the slot trails Kafka by one round trip (~linger.ms), and
            # a kill -9 re-sends only that much more.
            if self._asked_at is None or now - self._asked_at >= self.ANSWER_WITHIN_S:
                self._ask(position, producer)
        return min(position, self.acked)

    def settle(self, position: int, producer: BoundSink, timeout: float = 5.0) -> int:
        """At a stop: the bound for `position` written and waited for, so the last
        confirmation covers everything Kafka acknowledged (no needless re-sends)."""
        if not self.active:
            return position
        if position > self.acked:
            producer.flush(timeout)  # room in the queue, and the last records' answers
            if self._ask(position, producer):
                producer.flush(timeout)
        return min(position, self.acked)

    def _ask(self, position: int, producer: BoundSink) -> bool:
        """Write `position` as the next bound; False when librdkafka's queue is full (a
        backlog, or Kafka stalled): asked again at the next turn, or the slot stops at the
        last bound and the rest is re-sent."""
        try:
            self.store.save_limit(producer, position, self._answered)
        except BufferError:
            return False
        self._asked_at = time.monotonic()
        return True

    def _answered(self, limit: int | None) -> None:
        self._asked_at = None
        if limit is not None:
            self.acked = max(self.acked, limit)
