"""The retry gate: what waits in memory, what comes out, in which order."""

from __future__ import annotations

from bridge.consume.gate import RetryGate
from bridge.consume.records import SourceRecord
from bridge.dlq import headers as h

TOPIC = "onestop.public.dossiers.retry"


def retry(offset: int, dossier: int, due_ms: int, partition: int = 0) -> SourceRecord:
    return SourceRecord(TOPIC, partition, offset, b'{"id": %d}' % dossier, b"{}",
                        [(h.RETRY_DUE_MS, str(due_ms).encode())])


def keep(gate: RetryGate, *records: SourceRecord) -> None:
    for r in records:
        gate.keep(r, r.due_ms or 0)


def offsets(records: list[SourceRecord]) -> list[int]:
    return [r.offset for r in records]


def test_a_later_due_record_of_another_dossier_is_not_held_up() -> None:
    gate = RetryGate()
    night = retry(0, dossier=1, due_ms=6 * 3600_000)  # Zalo's night ban: 06:00
    soon = retry(1, dossier=2, due_ms=30_000)          # a 503, retried in 30 s
    assert gate.waits(night, 6 * 3600_000, now_ms=0) and gate.waits(soon, 30_000, now_ms=0)
    keep(gate, night, soon)
    assert gate.release(now_ms=29_999, limit=100) == []
    assert offsets(gate.release(now_ms=30_000, limit=100)) == [1]
    assert gate.kept() == 1
    assert offsets(gate.release(now_ms=6 * 3600_000, limit=100)) == [0] and gate.kept() == 0


def test_a_dossiers_records_come_out_in_order_behind_its_first() -> None:
    gate = RetryGate()
    first = retry(0, dossier=1, due_ms=60_000)
    parked = retry(1, dossier=1, due_ms=0)  # parked behind it: due at once
    assert gate.waits(parked, 0, now_ms=0) is False  # nothing of its dossier kept yet
    keep(gate, first)
    assert gate.waits(parked, 0, now_ms=0)  # now it must wait behind the first
    keep(gate, parked, retry(2, dossier=3, due_ms=0))
    assert offsets(gate.release(now_ms=1, limit=100)) == [2]
    assert offsets(gate.release(now_ms=60_000, limit=100)) == [0, 1]


def test_release_takes_no_more_than_there_is_room_for_and_keeps_the_rest_first() -> None:
    gate = RetryGate()
    keep(gate, *(retry(i, dossier=i, due_ms=0) for i in range(5)))
    assert offsets(gate.release(now_ms=0, limit=2)) == [0, 1]
    taken = gate.release(now_ms=0, limit=2)
    gate.restore(taken)  # the ledger refused them: first again
    assert offsets(gate.release(now_ms=0, limit=10)) == [2, 3, 4]


def test_partitions_are_independent_and_a_dropped_one_is_forgotten() -> None:
    gate = RetryGate()
    keep(gate, retry(0, 1, 10, partition=0), retry(0, 1, 10, partition=1))
    gate.drop((TOPIC, 0))
    assert gate.kept() == 1
    assert [(r.partition, r.offset) for r in gate.release(now_ms=10, limit=10)] == [(1, 0)]
