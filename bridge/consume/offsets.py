"""Which offset of a partition may be committed: the contiguous completed prefix only.

Records of one partition finish out of order (different dossiers go to different
workers), but Kafka stores one position per partition. Committing past a record that
is still being delivered would lose it on a crash, so the committable position is the
lowest offset still outstanding, or one past the highest offset seen when nothing is
outstanding. Offsets need not be contiguous (compaction and transaction markers leave
gaps), so the tracker keeps the set of outstanding offsets rather than a bitmap.

Pure and single-threaded: the consumer loop owns it (Uber's Consumer Proxy and
Arroyo commit the same way).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class PartitionOffsets:
    """Outstanding and completed offsets of one partition."""

    # The position the group had committed (or would resume from) when we took the
    # partition; nothing below it is ours to commit.
    start: int | None = None
    _outstanding: set[int] = field(default_factory=set)
    _heap: list[int] = field(default_factory=list)
    _highest: int | None = None
    _committed: int | None = None

    def add(self, offset: int) -> None:
        """A record was handed to processing."""
        if self._highest is not None and offset <= self._highest:
            raise ValueError(f"offset {offset} not after {self._highest}: seek without reset()")
        self._outstanding.add(offset)
        heapq.heappush(self._heap, offset)
        self._highest = offset

    def complete(self, offset: int) -> None:
        """The record's outcome is durable (delivered, retried or dead-lettered)."""
        if offset not in self._outstanding:
            raise KeyError(f"offset {offset} is not outstanding")
        self._outstanding.discard(offset)
        # Lazy deletion: pop finished offsets off the heap's top only.
        while self._heap and self._heap[0] not in self._outstanding:
            heapq.heappop(self._heap)

    @property
    def highest(self) -> int | None:
        """The last offset taken in (None before the first)."""
        return self._highest

    def is_outstanding(self, offset: int) -> bool:
        return offset in self._outstanding

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def committable(self) -> int | None:
        """The next offset to read after a restart (Kafka's convention), or None."""
        if self._heap:
            return self._heap[0]
        if self._highest is None:
            return None
        return self._highest + 1

    def to_commit(self) -> int | None:
        """The committable position if it moved since the last `mark_committed`."""
        position = self.committable()
        if position is None or position == self._committed:
            return None
        if self.start is not None and position <= self.start:
            return None
        return position

    def mark_committed(self, position: int) -> None:
        self._committed = position

    def reset(self) -> None:
        """Forget everything (after a seek back: those offsets will come again)."""
        self._outstanding.clear()
        self._heap.clear()
        self._highest = None


class OffsetTracker:
    """Per-(topic, partition) offset bookkeeping for everything this consumer owns."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], PartitionOffsets] = {}

    def assign(self, topic: str, partition: int, start: int | None = None) -> None:
        self._partitions[(topic, partition)] = PartitionOffsets(start=start)

    def revoke(self, topic: str, partition: int) -> None:
        self._partitions.pop((topic, partition), None)

    def owns(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._partitions

    def partition(self, topic: str, partition: int) -> PartitionOffsets:
        key = (topic, partition)
        if key not in self._partitions:
            self._partitions[key] = PartitionOffsets()
        return self._partitions[key]

    def add(self, topic: str, partition: int, offset: int) -> None:
        self.partition(topic, partition).add(offset)

    def complete(self, topic: str, partition: int, offset: int) -> bool:
        """Mark done; False when the partition was revoked meanwhile (result ignored)."""
        state = self._partitions.get((topic, partition))
        if state is None or not state.is_outstanding(offset):
            return False
        state.complete(offset)
        return True

    def outstanding(self) -> int:
        return sum(p.outstanding for p in self._partitions.values())

    def to_commit(self, only: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """Positions that moved since the last commit, per partition."""
        result: dict[tuple[str, int], int] = {}
        for key, state in self._partitions.items():
            if only is not None and key not in only:
                continue
            position = state.to_commit()
            if position is not None:
                result[key] = position
        return result

    def mark_committed(self, positions: dict[tuple[str, int], int]) -> None:
        for key, position in positions.items():
            state = self._partitions.get(key)
            if state is not None:
                state.mark_committed(position)
