"""The consumer loop: poll → decode → admit (ledger) → hand to workers → commit.

One thread owns the Kafka consumer, the offset tracker and all bookkeeping; workers
and producer delivery reports talk back through a completion queue. Offsets are
committed (about once a second, and on revoke and shutdown) only up to each
partition's contiguous prefix of records whose outcome is durable.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from bridge import metrics
from bridge.consume import kafka_ops, rebalance
from bridge.consume.gate import RetryGate
from bridge.consume.inflight import InFlight
from bridge.consume.offsets import OffsetTracker
from bridge.consume.records import SourceRecord
from bridge.consume.completions import Completions
from bridge.consume.parked import Parked
from bridge.consume.settle import Settler, WorkItem
from bridge.consume.workers import WorkerPool
from bridge.dlq.producer import Failure, OutcomeProducer, retry_topic
from bridge.errors import BadInputError, BridgeError
from bridge.ledger import Admission, Incoming, Ledger
from bridge.logs import redact_text
from bridge.settings import Settings

log = logging.getLogger(__name__)
TP = tuple[str, int]
MAX_BATCH = 500
POLL_WAIT_S = 0.05  # how long an idle loop waits for a record between housekeeping
FULL_WAIT_S = 0.05  # how long a full loop waits on completions between housekeeping
PAUSE_AFTER_S = 1.0  # a full loop pauses its partitions after this long


@dataclass
class LoopTimers:
    commit_s: float = 1.0
    lag_s: float = 10.0
    prune_s: float = 3600.0
    events_retention_s: float = 30 * 86400.0
    redact_sent_after_s: float = 0.0  # 0: never
    redact_closed_after_s: float = 0.0  # 0: never
    busy_prune_s: float = 60.0  # the next pass, while a redaction pass has more to do


class ConsumerLoop:
    def __init__(self, settings: Settings, pipeline: Any, ledger: Ledger, dispatcher: Any,
                 consumer: Any, producer: Any, *, partitions: Callable[[str], int | None],
                 timers: LoopTimers | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.ledger = ledger
        self.consumer = consumer
        self.source = settings.source.topic
        self.retry = retry_topic(settings.kafka, self.source)
        self.max_in_flight = max(1, settings.dispatch.max_in_flight)
        self.timers = timers or LoopTimers()
        self.clock = clock
        self.tracker = OffsetTracker()
        self.gate = RetryGate()
        self.inflight = InFlight()
        self.assigned: set[TP] = set()
        self.revoking: set[TP] = set()
        self.starts: dict[TP, int | None] = {}
        self.stopping = threading.Event()  # set when unstarted work is handed back
        self.outcomes = OutcomeProducer(producer, settings.kafka, partitions)
        self.completions = Completions(ledger, self.outcomes, self.inflight, self.tracker)
        self.parked = Parked()
        self.settler = Settler(
            dispatcher, self.parked, settings.dispatch.retry_delays_s,
            report=self.completions.settled, on_skipped=self.completions.skipped,
            is_current=self._is_current, confirm_parked=ledger.earlier_parked, clock=clock)
        self.workers = WorkerPool(settings.dispatch.workers, self.settler.handle)
        self.paused_when_full = False
        self._full_since: float | None = None
        self.rebalances = 0
        self._next = {"commit": 0.0, "lag": 0.0, "prune": 0.0}
        self._db_backoff = 0.0
        self._beat = metrics.loop_heartbeat.labels(loop="consumer")
        self._counters: dict[tuple[str, str], Any] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.parked.reload(self.ledger.parked())
        self.workers.start()
        self.consumer.subscribe([self.source, self.retry],
                                on_assign=functools.partial(rebalance.on_assign, self),
                                on_revoke=functools.partial(rebalance.on_revoke, self),
                                on_lost=functools.partial(rebalance.on_lost, self))
        log.info("consuming", extra={"topics": [self.source, self.retry]})
        while not stop.is_set():
            self.step()
        self.shutdown()

    def step(self) -> None:
        self._beat.set(time.time())
        self.completions.drain()
        self.outcomes.service(0)
        now_ms = int(self.clock() * 1000)
        for tp in self.gate.due(now_ms):
            if tp in self.assigned and not self.paused_when_full:
                self.consumer.resume([TopicPartition(*tp)])
        # Kept retry records are outstanding (no commit may pass them) but not work.
        room = self.max_in_flight - (self.tracker.outstanding() - self.gate.kept())
        released = self.gate.release(now_ms, room)
        if released:
            self._process(released, [], tracked=True)
            room -= len(released)
        if self._backpressure(room):
            # Full: wait for work to finish rather than poll. Completions are written
            # at once, since nothing else can move until they are.
            self.completions.wait(FULL_WAIT_S)
        else:
            self._poll(room)
        self._periodic()

    def _poll(self, room: int) -> None:
        before = self.rebalances
        # consume() returns when it has `num_messages` or at the timeout: take what is
        # there now, and on a quiet topic wait for the first record only — waiting for a
        # batch added the whole timeout to a lone notice's latency.
        messages = (self.consumer.consume(num_messages=max(1, min(MAX_BATCH, room)), timeout=0)
                    or self.consumer.consume(num_messages=1, timeout=POLL_WAIT_S))
        if self.rebalances != before:
            self._refetch(messages)  # the batch may mix records from before the rebalance
        elif messages:
            self._handle(messages)

    def shutdown(self) -> None:
        """Finish what fits in `dispatch.shutdown_deadline_s`, hand back the rest, commit."""
        budget = self.settings.dispatch.shutdown_deadline_s
        deadline = time.monotonic() + budget
        margin = min(3.0, budget * 0.25)
        self._pause(self.assigned)
        self.wait_idle(None, deadline - margin * 2)
        self.stopping.set()  # workers skip what they have not started
        self.wait_idle(None, deadline - margin)
        kafka_ops.commit(self.consumer, self.tracker)
        try:
            self.consumer.close()
        except KafkaException as exc:
            log.warning("consumer close failed", extra={"error": str(exc)})
        self.outcomes.flush(max(0.1, deadline - time.monotonic()))
        self.workers.stop(max(0.0, deadline - time.monotonic()))
        log.info("stopped", extra={"outstanding": self.tracker.outstanding()})

    # --- one polled batch --------------------------------------------------------------------
    def _handle(self, messages: list[Any]) -> None:
        now_ms = int(self.clock() * 1000)
        records: list[SourceRecord] = []
        waiting: list[tuple[SourceRecord, int]] = []  # retry records to keep until due
        waiting_dossiers: set[tuple[TP, bytes | None]] = set()
        for msg in messages:
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(msg.error())})
                continue
            record = SourceRecord.from_message(msg)
            if not self._takes(record):
                continue
            due = record.due_ms
            if due is not None and (self.gate.waits(record, due, now_ms)
                                    or (record.tp, record.key) in waiting_dossiers):
                if self.gate.kept() + len(waiting) >= self.gate.limit:
                    self._hold(record, due)  # memory's bound: the partition waits instead
                else:
                    waiting.append((record, due))
                    waiting_dossiers.add((record.tp, record.key))
                continue
            records.append(record)
        self._process(records, waiting)

    def _process(self, records: list[SourceRecord], waiting: list[tuple[SourceRecord, int]], *,
                 tracked: bool = False) -> None:
        """Admit `records` in one ledger transaction and hand them out; keep `waiting` (both
        into the offset tracker in offset order, unless `tracked`: released kept records)."""
        decoded = [self._decode(r) for r in records]
        batch = [inc for inc in decoded if isinstance(inc, Incoming)]
        try:
            admissions = iter(self.ledger.admit(batch, self.pipeline.notify))
        except Exception:
            log.exception("ledger admission failed; the batch will be taken again")
            if tracked:
                self.gate.restore(records)
            else:
                self._seek_back(records + [w for w, _ in waiting])
            self._db_backoff = min(max(0.2, self._db_backoff * 2), 5.0)
            time.sleep(self._db_backoff)
            return
        self._db_backoff = 0.0
        if not tracked:
            for record in sorted(records + [w for w, _ in waiting], key=lambda r: r.offset):
                self.tracker.add(record.topic, record.partition, record.offset)
        for record, due in waiting:
            self.gate.keep(record, due)
        for record, item in zip(records, decoded):
            if isinstance(item, Incoming):
                self._dispatch(record, next(admissions))
            elif isinstance(item, Failure):
                self._dead_letter(record, item)
            else:
                self.tracker.complete(record.topic, record.partition, record.offset)

    def _takes(self, record: SourceRecord) -> bool:
        """False for records of revoked partitions, behind a held retry head, or re-read."""
        if record.tp not in self.assigned or self.gate.holds(record.tp):
            return False
        highest = self.tracker.partition(*record.tp).highest
        if highest is not None and record.offset <= highest:
            # The client's position moved back (an offset reset): these are taken already.
            log.debug("skipping a record already taken", extra={
                "partition": kafka_ops.lag_label(record.tp), "offset": record.offset})
            return False
        return True

    def _decode(self, record: SourceRecord) -> Incoming | Failure | None:
        try:
            event = self.pipeline.decode(record.value)
            if event is None:
                self._consumed(record.topic, "none")
                return None
            self._consumed(record.topic, event.op)
            if record.replayed:  # an operator's replay reached the bridge: visible on /metrics
                metrics.replayed.labels(result="received").inc()
            return Incoming(event, self.pipeline.event_id(event), self.pipeline.dossier_key(event),
                            replay=record.replayed,
                            phone=self.pipeline.phone(event) if record.replayed else None)
        except Exception as exc:  # malformed bytes must not stop the partition
            self._consumed(record.topic, "invalid")
            metrics.bad_events.labels(reason="malformed_event").inc()
            if not isinstance(exc, BadInputError):
                log.exception("unexpected error decoding a record")
            return _failure("malformed_event", "decode", exc)

    def _consumed(self, topic: str, op: str) -> None:
        child = self._counters.get((topic, op))
        if child is None:  # labels() costs more than the increment; keep the children
            child = self._counters[(topic, op)] = metrics.events_consumed.labels(topic=topic, op=op)
        child.inc()

    def _dispatch(self, record: SourceRecord, admission: Admission) -> None:
        if admission.error is not None:
            metrics.bad_events.labels(reason="bad_input").inc()
            self._dead_letter(record, _failure("bad_input", "notify", admission.error))
            return
        wanted = record.retry_key
        epoch = self.inflight.epochs[record.tp]
        items = [WorkItem(record, s, epoch) for s in admission.to_send
                 if s.key not in self.inflight.keys and (wanted is None or s.key == wanted)]
        if not items:
            self.tracker.complete(record.topic, record.partition, record.offset)
            return
        self.inflight.begin_items(record, items)
        for item in items:
            self.workers.submit(item)
        metrics.in_flight.set(len(self.inflight.keys))

    def _dead_letter(self, record: SourceRecord, failure: Failure) -> None:
        epoch = self.inflight.begin_record(record)
        self.outcomes.dead_letter(record, failure,
                                  on_durable=lambda: self.completions.record_acked(record, epoch))
        # What to fix, in the log the runbook reads first (redacted as the DLQ header is).
        log.warning("record dead-lettered", extra={
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "reason": failure.reason, "error_class": failure.error_class,
            "error": redact_text(failure.message)[:300]})

    def _hold(self, record: SourceRecord, due_ms: int) -> None:
        tp = TopicPartition(record.topic, record.partition, record.offset)
        self.gate.hold(record.tp, record.offset, due_ms)
        self.consumer.pause([tp])
        self.consumer.seek(tp)

    def _refetch(self, messages: list[Any]) -> None:
        """Drop a batch that straddled a rebalance; read its partitions again from the start.

        librdkafka serves rebalance callbacks inside consume(), so one batch can hold
        records fetched for the old assignment followed by the new one's; neither part
        can be trusted to line up with the fresh offset tracker.
        """
        for tp in {(m.topic(), m.partition()) for m in messages if m.error() is None}:
            if tp not in self.assigned or self.gate.holds(tp):
                continue
            start = self.starts.get(tp)
            # Unknown start: from the beginning — the ledger makes re-reading harmless.
            self.consumer.seek(TopicPartition(tp[0], tp[1],
                                              OFFSET_BEGINNING if start is None else start))

    def _seek_back(self, records: list[SourceRecord]) -> None:
        """Read these records again: from the first of each partition."""
        first: dict[TP, int] = {}
        for r in records:
            first[r.tp] = min(r.offset, first.get(r.tp, r.offset))
        for (topic, partition), offset in first.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))

    # --- completions (from workers and producer reports) ---------------------------------------
    def _is_current(self, item: WorkItem) -> bool:
        return (not self.stopping.is_set() and item.tp not in self.revoking
                and self.inflight.current(item.tp, item.epoch))

    def wait_idle(self, tps: set[TP] | None, deadline: float) -> None:
        """Serve completions until no work of `tps` (all if None) is out, or the deadline."""
        while time.monotonic() < deadline:
            self.completions.drain(force=True)
            self.outcomes.service(0.05)
            if not self.inflight.busy(tps):
                return
            self._beat.set(time.time())
        if self.inflight.busy(tps):
            log.warning("deadline reached with work in flight; it will be processed again",
                        extra={"in_flight": self.inflight.busy(tps)})

    # --- flow control and housekeeping -----------------------------------------------------------
    def _backpressure(self, room: int) -> bool:
        """True while the loop should wait for completions instead of polling.

        Records are taken in batches of at least a quarter of the bound (fewer, larger
        admission transactions than topping up a few at a time). A full loop does not
        pause its partitions: librdkafka drops the prefetched records of a paused
        partition and takes ~0.5 s to fetch again after resume, which starved the
        workers once per bound's worth of records. Only a stall longer than
        `PAUSE_AFTER_S` (rate limits, the night window, a slow upstream) pauses them, so
        that polling — which keeps the group membership alive — can go on meanwhile.
        """
        if room >= max(1, self.max_in_flight // 4):
            self._full_since = None
            if self.paused_when_full and room >= self.max_in_flight // 2:
                self.paused_when_full = False
                self.consumer.resume([TopicPartition(*tp) for tp in self.assigned
                                      if not self.gate.holds(tp)])
            return False
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        if not self.paused_when_full and now - self._full_since >= PAUSE_AFTER_S:
            self.paused_when_full = True
            self._pause(self.assigned)
        return not self.paused_when_full

    def _pause(self, tps: set[TP]) -> None:
        if tps:
            self.consumer.pause([TopicPartition(*tp) for tp in tps])

    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next["commit"]:
            self._next["commit"] = now + self.timers.commit_s
            kafka_ops.commit(self.consumer, self.tracker)
        if now >= self._next["lag"]:
            self._next["lag"] = now + self.timers.lag_s
            kafka_ops.update_lag(self.consumer, self.assigned, self.tracker)
            # Kept records are consumed, so the lag no longer counts them: this does.
            metrics.retry_waiting.set(self.gate.kept())
        if now >= self._next["prune"]:
            self._next["prune"] = now + self.timers.prune_s
            try:
                self.ledger.prune_events(self.timers.events_retention_s)
                if not self._redact():
                    self._next["prune"] = now + self.timers.busy_prune_s
            except Exception:
                log.exception("ledger housekeeping failed (pruning event ids, redacting old data)")

    def _redact(self) -> bool:
        """One bounded pass of each configured redaction; False while either has more to do."""
        finished = True
        for after_s, redact, what in (
                (self.timers.redact_sent_after_s, self.ledger.redact_sent, "sent notices"),
                (self.timers.redact_closed_after_s, self.ledger.redact_closed, "closed dossiers")):
            if after_s > 0:
                done = redact(after_s)
                if done.redacted:
                    log.info("redacted old %s", what, extra={"redacted": done.redacted})
                finished = finished and done.finished
        return finished


def _failure(reason: str, stage: str, exc: BaseException) -> Failure:
    if isinstance(exc, BridgeError):
        return Failure(reason, exc.error_class, exc.message, stage, code=exc.code)
    return Failure(reason, type(exc).__name__, str(exc), stage)
