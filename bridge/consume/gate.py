"""Delayed retry topic: a partition waits until its head record is due.

Retry records are appended in failure order, each with its due time. Sleeping on them
one by one would add the waits up; instead, when the head of a retry partition is not
due yet, the consumer seeks back to it and pauses the partition until it is. Records
behind it wait too — for the same dossier that is exactly the order we want.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TP = tuple[str, int]


@dataclass
class RetryGate:
    # partition → (offset of the head that is not due, epoch ms when it is)
    _waiting: dict[TP, tuple[int, int]] = field(default_factory=dict)

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
        self._waiting.pop(tp, None)

    def next_due_ms(self) -> int | None:
        return min((due for _, due in self._waiting.values()), default=None)

    def waiting(self) -> dict[TP, tuple[int, int]]:
        return dict(self._waiting)
