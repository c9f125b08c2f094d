"""The offset tracker never lets a commit run ahead of unfinished work."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.consume.offsets import OffsetTracker, PartitionOffsets


def test_nothing_seen_nothing_to_commit() -> None:
    p = PartitionOffsets()
    assert p.committable() is None
    assert p.to_commit() is None


def test_commit_is_one_past_the_contiguous_completed_prefix() -> None:
    p = PartitionOffsets()
    for offset in range(5):
        p.add(offset)
    p.complete(0)
    p.complete(1)
    p.complete(3)
    assert p.committable() == 2, "offset 2 is still in flight; 3 must not be committed"
    p.complete(2)
    assert p.committable() == 4
    p.complete(4)
    assert p.committable() == 5


def test_gaps_in_offsets_are_fine() -> None:
    # Compacted topics and transaction markers leave holes in the offsets.
    p = PartitionOffsets()
    for offset in (10, 11, 15, 20):
        p.add(offset)
    p.complete(10)
    p.complete(11)
    assert p.committable() == 15
    p.complete(20)
    assert p.committable() == 15
    p.complete(15)
    assert p.committable() == 21


def test_to_commit_reports_only_movement() -> None:
    p = PartitionOffsets()
    p.add(0)
    p.complete(0)
    assert p.to_commit() == 1
    p.mark_committed(1)
    assert p.to_commit() is None
    p.add(1)
    assert p.to_commit() is None, "position 1 is already committed"
    p.complete(1)
    assert p.to_commit() == 2


def test_nothing_at_or_below_the_start_position_is_committed() -> None:
    p = PartitionOffsets(start=100)
    p.add(100)
    assert p.to_commit() is None
    p.complete(100)
    assert p.to_commit() == 101


def test_offsets_must_increase_and_completion_must_be_known() -> None:
    p = PartitionOffsets()
    p.add(5)
    with pytest.raises(ValueError):
        p.add(5)
    with pytest.raises(ValueError):
        p.add(3)
    with pytest.raises(KeyError):
        p.complete(4)
    p.complete(5)
    with pytest.raises(KeyError):
        p.complete(5)


def test_reset_forgets_in_flight_offsets_after_a_seek_back() -> None:
    p = PartitionOffsets()
    p.add(7)
    p.add(8)
    p.reset()
    p.add(7)
    assert p.committable() == 7


def test_tracker_ignores_completions_of_revoked_partitions() -> None:
    t = OffsetTracker()
    t.assign("t", 0)
    t.add("t", 0, 0)
    t.revoke("t", 0)
    assert t.complete("t", 0, 0) is False
    assert t.to_commit() == {}
    assert not t.owns("t", 0)


def test_tracker_commits_per_partition_and_filters() -> None:
    t = OffsetTracker()
    for part in (0, 1):
        t.assign("t", part)
        t.add("t", part, 0)
        t.add("t", part, 1)
    t.complete("t", 0, 0)
    t.complete("t", 1, 0)
    t.complete("t", 1, 1)
    assert t.outstanding() == 1
    assert t.to_commit() == {("t", 0): 1, ("t", 1): 2}
    assert t.to_commit(only={("t", 1)}) == {("t", 1): 2}
    t.mark_committed({("t", 0): 1, ("t", 1): 2})
    assert t.to_commit() == {}


def test_every_completion_order_of_a_small_batch() -> None:
    """Exhaustive over all 720 completion orders of six records."""
    offsets = [0, 1, 2, 4, 5, 9]
    for order in itertools.permutations(offsets):
        p = PartitionOffsets()
        for o in offsets:
            p.add(o)
        done: set[int] = set()
        for o in order:
            p.complete(o)
            done.add(o)
            assert p.committable() == _model(offsets, done)


def _model(offsets: list[int], done: set[int]) -> int:
    """Reference: the first unfinished offset, else one past the last."""
    for o in offsets:
        if o not in done:
            return o
    return offsets[-1] + 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_interleavings_match_the_reference_model(data: st.DataObject) -> None:
    steps = data.draw(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=60))
    p = PartitionOffsets()
    offsets: list[int] = []
    done: set[int] = set()
    committed: int | None = None
    next_offset = 0
    for gap in steps:
        action = data.draw(st.sampled_from(["add", "complete", "commit"]))
        pending = [o for o in offsets if o not in done]
        if action == "add" or not pending:
            next_offset += gap
            p.add(next_offset)
            offsets.append(next_offset)
        elif action == "complete":
            o = data.draw(st.sampled_from(pending))
            p.complete(o)
            done.add(o)
        else:
            position = p.to_commit()
            if position is not None:
                # Never past an unfinished record, never backwards.
                assert all(o in done for o in offsets if o < position)
                assert committed is None or position > committed
                p.mark_committed(position)
                committed = position
        assert p.committable() == _model(offsets, done)
        assert p.outstanding == len(offsets) - len(done)
