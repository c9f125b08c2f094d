"""Delayed retry topic: records wait in memory until they are due, each dossier in order.

Retry records are appended in failure order, each with its due time, which is not the
order they come due: a notice held back until 06:00 by Zalo's night ban may sit ahead of
one whose transient failure is retried in 30 s. So a record that is not due yet is kept
here and the partition goes on; a later record of the same dossier (the same Kafka key)
waits behind it, so a citizen never reads a later notice before an earlier one. The
offset tracker holds every kept record, so no commit passes one: a restart or a new
owner of the partition reads them again.

Memory is bounded: past `limit` kept records the partition itself waits, as it did
before — seeked back to the record and paused until it is due.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from bridge.consume.records import SourceRecord

TP = tuple[str, int]
Kept = tuple[SourceRecord, int]  # the record and its due time (epoch ms)


@dataclass
class RetryGate:
    limit: int = 20_000  # kept records (~1-2 kB each)
    _kept: dict[TP, deque[Kept]] = field(default_factory=dict)  # in offset order
    _keys: dict[TP, Counter[bytes | None]] = field(default_factory=dict)  # dossiers kept
    _count: int = 0
    _next_due_ms: int | None = None  # no kept record may be released before
    # Over `limit`: partition → (offset of the head that is not due, epoch ms when it is).
    _waiting: dict[TP, tuple[int, int]] = field(default_factory=dict)

    def waits(self, record: SourceRecord, due_ms: int, now_ms: int) -> bool:
        """Must this retry record wait: not due, or behind a kept one of its dossier?"""
        if due_ms > now_ms:
            return True
        keys = self._keys.get(record.tp)
        return keys is not None and keys[record.key] > 0

    def keep(self, record: SourceRecord, due_ms: int, *, first: bool = False) -> None:
        kept = self._kept.setdefault(record.tp, deque())
        if first:
            kept.appendleft((record, due_ms))
        else:
            kept.append((record, due_ms))
        self._keys.setdefault(record.tp, Counter())[record.key] += 1
        self._count += 1
        if self._next_due_ms is None or due_ms < self._next_due_ms:
            self._next_due_ms = due_ms

    def kept(self) -> int:
        return self._count

    def restore(self, records: list[SourceRecord]) -> None:
        """Released records that could not be taken after all: first again, in order."""
        for record in reversed(records):
            self.keep(record, record.due_ms or 0, first=True)

    def release(self, now_ms: int, limit: int) -> list[SourceRecord]:
        """Up to `limit` kept records that are due and first of their dossier, in order."""
        if self._next_due_ms is None or self._next_due_ms > now_ms or limit <= 0:
            return []
        out: list[SourceRecord] = []
        next_due: int | None = None
        for tp in list(self._kept):
            stay: deque[Kept] = deque()
            blocked: set[bytes | None] = set()
            for record, due in self._kept[tp]:
                if record.key in blocked or due > now_ms or len(out) >= limit:
                    if record.key not in blocked:  # its dossier's next candidate
                        next_due = due if next_due is None else min(next_due, due)
                        blocked.add(record.key)
                    stay.append((record, due))
                    continue
                out.append(record)
                self._keys[tp][record.key] -= 1
            self._set(tp, stay)
        self._count -= len(out)
        self._next_due_ms = next_due
        return out

    def _set(self, tp: TP, stay: deque[Kept]) -> None:
        if stay:
            self._kept[tp] = stay
            self._keys[tp] = +self._keys[tp]  # drop the zero counts
        else:
            self._kept.pop(tp, None)
            self._keys.pop(tp, None)

    # --- over the limit: the partition waits for its head ---------------------------------
    def hold(self, tp: TP, offset: int, due_ms: int) -> None:
        self._waiting[tp] = (offset, due_ms)

    def holds(self, tp: TP) -> bool:
        return tp in self._waiting

    def due(self, now_ms: int) -> list[TP]:
        """Partitions whose head is due now; they are released."""
        ready = [tp for tp, (_, due) in self._waiting.items() if due <= now_ms]
        for tp in ready:
            del self._waiting[tp]
        return ready

    def drop(self, tp: TP) -> None:
        """The partition was revoked or lost: its records will be read again."""
        self._waiting.pop(tp, None)
        self._count -= len(self._kept.get(tp, ()))
        self._set(tp, deque())
