"""The transition table of design.md §3, row by row, and its properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import BadInputError
from bridge.model import STATUS_KIND
from bridge.pipeline import Pipeline
from bridge.settings import Settings
from bridge.transitions import MemoryStateStore
from events import event, present, row


@pytest.fixture()
def pipeline() -> Pipeline:
    return Pipeline(Settings())


def kinds(pipeline: Pipeline, store: MemoryStateStore, *documents: dict,
          replayed: bool = False) -> list[str]:
    return [n.kind for document in documents
            for n in pipeline.notify(present(pipeline.decode(_dump(document))), store, replayed)]


def _dump(document: dict) -> str:
    import json

    return json.dumps(document)


@pytest.mark.parametrize("status, kind", sorted(STATUS_KIND.items()))
def test_insert_notifies_the_kind_of_its_status(pipeline, status: int, kind: str | None) -> None:
    got = kinds(pipeline, MemoryStateStore(), event("c", row(status=status)))
    assert got == ([kind] if kind else [])


@pytest.mark.parametrize("new, kind", sorted(STATUS_KIND.items()))
def test_update_with_changed_status_notifies_the_new_kind(pipeline, new: int, kind) -> None:
    old = 2 if new != 2 else 1
    got = kinds(pipeline, MemoryStateStore(),
                event("u", row(status=new), before=row(status=old)))
    assert got == ([kind] if kind else [])


@pytest.mark.parametrize("status", [2, 4])
def test_due_date_moved_later_while_received_or_processing_is_an_apology(pipeline, status) -> None:
    store = MemoryStateStore()
    got = kinds(pipeline, store,
                event("c", row(status=status)),
                event("u", row(status=status, due_at="2024-06-27T09:00:00Z", note="Cần xác minh"),
                      before=row(status=status)))
    assert got[-1:] == ["APOLOGY_RESCHEDULED"]


@pytest.mark.parametrize("later, apology", [
    ("2024-06-20T16:59:00Z", False),  # 09:00 → 23:59 the same day in Việt Nam (UTC+7)
    ("2024-06-20T17:00:00Z", True),   # 00:00 the next day there
])
def test_an_apology_is_for_a_later_day_not_a_later_hour(pipeline, later, apology) -> None:
    """Else: "not done by 20/06/2024 … new appointment: 20/06/2024"."""
    got = kinds(pipeline, MemoryStateStore(),
                event("c", row(status=4, due_at="2024-06-20T02:00:00Z")),
                event("u", row(status=4, due_at=later), before=row(status=4)))
    assert got == (["APOLOGY_RESCHEDULED"] if apology else [])


@pytest.mark.parametrize("status", [1, 5, 6, 9])
def test_due_date_moved_in_other_statuses_says_nothing(pipeline, status) -> None:
    got = kinds(pipeline, MemoryStateStore(),
                event("u", row(status=status, due_at="2024-06-27T09:00:00Z"),
                      before=row(status=status)))
    assert got == []


def test_due_date_moved_earlier_is_no_apology(pipeline) -> None:
    got = kinds(pipeline, MemoryStateStore(),
                event("u", row(status=4, due_at="2024-06-15T09:00:00Z"), before=row(status=4)))
    assert got == []


def test_other_updates_say_nothing(pipeline) -> None:
    got = kinds(pipeline, MemoryStateStore(),
                event("u", row(status=4, note="đã chuyển phòng chuyên môn"), before=row(status=4)))
    assert got == []


def test_without_before_the_last_known_state_decides(pipeline) -> None:
    store = MemoryStateStore()
    got = kinds(pipeline, store,
                event("c", row(status=2)),
                event("u", row(status=2, note="sửa địa chỉ"), before=None),     # nothing changed
                event("u", row(status=5, note="Bổ sung bản vẽ"), before={"id": 1}),  # key only
                event("u", row(status=4), before=None),
                event("u", row(status=4, due_at="2024-07-01T09:00:00Z"), before={"id": 1}))
    assert got == ["RECEIVED", "SUPPLEMENT_REQUESTED", "APOLOGY_RESCHEDULED"]


def test_unchanged_toast_values_come_from_the_last_known_state(pipeline) -> None:
    store = MemoryStateStore()
    kinds(pipeline, store, event("c", row(status=2)))
    toasted = row(status=5, note="Bổ sung sổ hộ khẩu",
                  procedure_name="__debezium_unavailable_value")
    [notice] = pipeline.notify(pipeline.decode(_dump(event("u", toasted, before=None))), store)
    assert "Cấp giấy chứng nhận quyền sử dụng đất lần đầu" in notice.text
    assert "__debezium" not in notice.text


def test_a_dossier_never_seen_updated_without_before_is_treated_as_changed(pipeline) -> None:
    got = kinds(pipeline, MemoryStateStore(), event("u", row(status=9), before=None))
    assert got == ["RESULT_READY"]


def test_snapshot_reads_seed_the_state_but_never_notify(pipeline) -> None:
    store = MemoryStateStore()
    got = kinds(pipeline, store,
                event("r", row(status=5), snapshot="true"),
                event("u", row(status=5, note="khác"), before=None),
                event("u", row(status=4), before=None))
    assert got == []


def test_deletes_truncates_and_messages_never_notify(pipeline) -> None:
    store = MemoryStateStore()
    got = kinds(pipeline, store,
                event("c", row(status=2)),
                event("d", None, before={"id": 1}),
                {"op": "t", "source": event("t")["source"]},
                {"op": "m", "source": event("m")["source"], "message": {"prefix": "x", "content": ""}})
    assert got == ["RECEIVED"]
    assert store.get("1") is None


def test_a_second_supplement_request_a_week_later_is_a_second_notice(pipeline) -> None:
    store = MemoryStateStore()
    got = kinds(pipeline, store,
                event("c", row(status=2)),
                event("u", row(status=5), before=None),
                event("u", row(status=4), before=None),
                event("u", row(status=5, note="Bổ sung lần 2"), before=None, ts_ms=1718760600000))
    assert got == ["RECEIVED", "SUPPLEMENT_REQUESTED", "SUPPLEMENT_REQUESTED"]


def test_a_replayed_event_the_dossier_has_moved_past_changes_nothing(pipeline) -> None:
    """Status 42 was dead-lettered; the result came out meanwhile; the status map is fixed
    and the dead letter replayed: no stale supplement request, and no second result notice
    at the next update."""
    store = MemoryStateStore()
    assert kinds(pipeline, store, event("c", row(status=2, updated_at="2024-06-12T08:00:00Z")),
                 event("u", row(status=9, updated_at="2024-06-14T08:00:00Z"), before=None)) \
        == ["RECEIVED", "RESULT_READY"]
    assert kinds(pipeline, store, event("u", row(status=5, updated_at="2024-06-13T08:00:00Z"),
                                        before=None), replayed=True) == []
    assert kinds(pipeline, store, event("u", row(status=9, note="ghi chú", updated_at="2024-06-15T08:00:00Z"),
                                        before=None)) == []


def test_in_the_stream_an_earlier_updated_at_is_a_skewed_clock_and_still_notifies(pipeline) -> None:
    """Two application servers whose clocks differ by minutes: the later change carries the
    earlier stamp. It used to be taken for a stale replay and dropped without a trace."""
    store = MemoryStateStore()
    assert kinds(pipeline, store, event("c", row(status=4, updated_at="2024-06-13T08:20:00Z")),
                 event("u", row(status=5, updated_at="2024-06-13T08:18:00Z"), before=None)) \
        == ["SUPPLEMENT_REQUESTED"]


def test_idempotency_key_is_stable_for_the_same_event_and_distinct_otherwise(pipeline) -> None:
    first = event("u", row(status=5), before=row(status=4), lsn=42)
    again = pipeline.notify(pipeline.decode(_dump(first)), MemoryStateStore())
    once = pipeline.notify(pipeline.decode(_dump(first)), MemoryStateStore())
    other = pipeline.notify(pipeline.decode(_dump(event("u", row(status=5), before=row(status=4),
                                                             lsn=43))), MemoryStateStore())
    assert again[0].idempotency_key == once[0].idempotency_key
    assert again[0].idempotency_key != other[0].idempotency_key


def test_unmapped_status_is_bad_input_never_guessed() -> None:
    pipeline = Pipeline(Settings(source={"status_map": {"DA_TIEP_NHAN": 2}}))
    with pytest.raises(BadInputError, match="maps to no national status"):
        pipeline.notify(present(pipeline.decode(_dump(event("c", row(status="DANG_XU_LY"))))),
                        MemoryStateStore())
    with pytest.raises(BadInputError, match="1..10"):
        Pipeline(Settings()).notify(present(Pipeline(Settings()).decode(_dump(event("c", row(status=11))))),
                                    MemoryStateStore())


# --- property: random status walks give exactly the notices the rules predict --------------

statuses = st.integers(min_value=1, max_value=10)
steps = st.lists(st.tuples(statuses, st.integers(min_value=-3, max_value=3),
                           st.booleans()), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(first=statuses, walk=steps)
def test_random_status_walks_notify_exactly_as_the_rules_predict(first, walk) -> None:
    pipeline = Pipeline(Settings())
    store = MemoryStateStore()
    due_day = 20
    documents = [event("c", row(status=first, due_at=f"2024-06-{due_day:02d}T09:00:00Z"))]
    expected = [STATUS_KIND[first]] if STATUS_KIND[first] else []
    status = first
    for new_status, shift, with_before in walk:
        new_due = min(max(due_day + shift, 1), 28)
        before = row(status=status, due_at=f"2024-06-{due_day:02d}T09:00:00Z") if with_before \
            else None
        documents.append(event("u", row(status=new_status, due_at=f"2024-06-{new_due:02d}T09:00:00Z"),
                               before=before))
        if new_status != status:
            expected += [STATUS_KIND[new_status]] if STATUS_KIND[new_status] else []
        elif new_status in (2, 4) and new_due > due_day:
            expected.append("APOLOGY_RESCHEDULED")
        status, due_day = new_status, new_due
    assert kinds(pipeline, store, *documents) == expected
