"""Where the consumer loop learns that work finished, and makes outcomes durable.

Workers and producer delivery reports put messages on one queue; the consumer thread
drains it: decided outcomes are written to the ledger in one transaction (group
commit), then retry/DLQ copies are produced; a record's offset is completed only when
all of its notifications are durable. If the ledger write fails the outcomes stay
queued here and are written on a later pass — nothing is committed meanwhile.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from bridge import metrics
from bridge.consume.inflight import InFlight
from bridge.consume.offsets import OffsetTracker
from bridge.consume.records import SourceRecord
from bridge.consume.settle import Settled, WorkItem
from bridge.dlq.producer import OutcomeProducer
from bridge.ledger import Ledger

log = logging.getLogger("bridge.consume.loop")
# Outcomes are written in groups: each commit rewrites the index pages its rows touch,
# so one commit of a hundred rows costs little more than one of ten. A group waits for
# this many rows or this long, whichever comes first; the records stay in flight (and
# their offsets uncommitted) meanwhile, so nothing is lost by waiting.
GROUP_ROWS = 128
GROUP_WAIT_S = 0.25


class Completions:
    def __init__(self, ledger: Ledger, outcomes: OutcomeProducer, inflight: InFlight,
                 tracker: OffsetTracker) -> None:
        self.ledger = ledger
        self.outcomes = outcomes
        self.inflight = inflight
        self.tracker = tracker
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._unwritten: list[Settled] = []
        self._oldest_at = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0

    # --- producers of completions (any thread) ------------------------------------------------
    def settled(self, settled: Settled) -> None:
        self._queue.put(("settled", settled))

    def skipped(self, item: WorkItem) -> None:
        self._queue.put(("skipped", item))

    def acked(self, item: WorkItem) -> None:
        self._queue.put(("acked", item))

    def record_acked(self, record: SourceRecord, epoch: int) -> None:
        self._queue.put(("record", (record, epoch)))

    # --- the consumer thread ----------------------------------------------------------------
    def drain(self, *, force: bool = False) -> None:
        """Take in what finished; write the outcome group when due (`force`: now)."""
        while True:
            try:
                self._take(*self._queue.get_nowait())
            except queue.Empty:
                break
        if force or len(self._unwritten) >= GROUP_ROWS \
                or time.monotonic() - self._oldest_at >= GROUP_WAIT_S:
            self._write()
        metrics.in_flight.set(len(self.inflight.keys))

    def wait(self, timeout: float) -> None:
        """Block until something finishes (or `timeout`), then take in all and write now."""
        try:
            self._take(*self._queue.get(timeout=timeout))
        except queue.Empty:
            pass
        self.drain(force=True)

    def _take(self, kind: str, payload: Any) -> None:
        if kind == "settled":
            if not self._unwritten:
                self._oldest_at = time.monotonic()
            self._unwritten.append(payload)
        elif kind == "record":
            record, epoch = payload
            if self.inflight.record_done(record, epoch):
                self.tracker.complete(record.topic, record.partition, record.offset)
        else:
            self._item_done(payload, settled=(kind == "acked"))

    @property
    def pending_writes(self) -> int:
        return len(self._unwritten)

    def _write(self) -> None:
        if not self._unwritten or time.monotonic() < self._retry_at:
            return
        batch, self._unwritten = self._unwritten, []
        try:
            self.ledger.record_outcomes([s.row for s in batch])
        except Exception:
            log.exception("ledger write of delivery outcomes failed; will retry")
            self._unwritten = batch + self._unwritten
            self._backoff = min(max(0.2, self._backoff * 2), 5.0)
            self._retry_at = time.monotonic() + self._backoff
            return
        self._backoff = 0.0
        for s in batch:
            self._route(s)

    def _route(self, s: Settled) -> None:
        item = s.item
        if s.route == "done":
            self._item_done(item, settled=True)
        elif s.route == "retry":
            assert s.failure is not None and s.due_ms is not None
            self.outcomes.retry(item.record, s.failure, due_ms=s.due_ms, round_=s.round_,
                                on_durable=lambda: self.acked(item))
        else:
            assert s.failure is not None
            self.outcomes.dead_letter(item.record, s.failure, on_durable=lambda: self.acked(item))

    def _item_done(self, item: WorkItem, *, settled: bool) -> None:
        if self.inflight.item_done(item, settled=settled):
            self.tracker.complete(item.record.topic, item.record.partition, item.record.offset)
