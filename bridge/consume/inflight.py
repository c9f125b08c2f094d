"""Bookkeeping of records handed out for processing (consumer thread only).

A record is finished when each of its notifications is settled (sent, or its retry /
DLQ copy acknowledged). Work from before a rebalance carries an older partition epoch
and is ignored when it reports back: the partition's new owner handles the record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bridge.consume.records import SourceRecord
from bridge.consume.settle import WorkItem

TP = tuple[str, int]


@dataclass
class _Open:
    remaining: int


class InFlight:
    def __init__(self) -> None:
        self.epochs: Counter[TP] = Counter()
        self.active: Counter[TP] = Counter()   # items with workers or awaiting a broker ack
        self.keys: set[str] = set()             # idempotency keys being delivered right now
        self._open: dict[tuple[TP, int], _Open] = {}

    def new_epoch(self, tp: TP) -> int:
        self.epochs[tp] += 1
        return self.epochs[tp]

    def current(self, tp: TP, epoch: int) -> bool:
        return self.epochs[tp] == epoch

    def begin_items(self, record: SourceRecord, items: list[WorkItem]) -> None:
        self._open[(record.tp, record.offset)] = _Open(len(items))
        for item in items:
            self.keys.add(item.stored.key)
            self.active[record.tp] += 1

    def begin_record(self, record: SourceRecord) -> int:
        """A record-level outcome (a DLQ copy) is on its way; returns the epoch to report."""
        self.active[record.tp] += 1
        return self.epochs[record.tp]

    def item_done(self, item: WorkItem, *, settled: bool) -> bool:
        """True when this was the record's last unsettled notification."""
        self.keys.discard(item.stored.key)
        if not self.current(item.tp, item.epoch):
            return False
        self.active[item.tp] -= 1
        if not settled:
            return False  # handed back: the record stays uncommitted
        slot = (item.tp, item.record.offset)
        entry = self._open.get(slot)
        if entry is None:
            return False
        entry.remaining -= 1
        if entry.remaining:
            return False
        del self._open[slot]
        return True

    def record_done(self, record: SourceRecord, epoch: int) -> bool:
        if not self.current(record.tp, epoch):
            return False
        self.active[record.tp] -= 1
        return True

    def busy(self, tps: set[TP] | None = None) -> int:
        return sum(n for tp, n in self.active.items() if n > 0 and (tps is None or tp in tps))

    def forget(self, tps: set[TP]) -> None:
        for tp in tps:
            self.epochs[tp] += 1
            self.active.pop(tp, None)
        self._open = {slot: e for slot, e in self._open.items() if slot[0] not in tps}
