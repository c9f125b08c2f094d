"""The incremental snapshot's state machine (connectors/incremental.py), without I/O: what
a signal starts or stops, what the stream's changes take out of a chunk, what progress is
kept for a restart and when."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from connectors.incremental import Chunk, ChunkDeferred, IncrementalSnapshot, Visibility
from connectors.signals import parse_signal

TABLES = frozenset({"public.dossiers", "public.payments"})


def row(signal_id: str, kind: str = "execute-snapshot", data: Any = None) -> dict[str, Any]:
    if data is None:
        data = {"data-collections": ["public.dossiers"], "type": "incremental"}
    return {"id": signal_id, "type": kind, "data": data if isinstance(data, str) else json.dumps(data)}


class Source:
    """Tables of integer keys 1..n, read `size` at a time (the snapshot: `visibility`);
    watermarks recorded."""

    def __init__(self, sizes: dict[str, int], size: int = 3) -> None:
        self.sizes, self.size, self.watermarks = sizes, size, list[str]()
        self.visibility = Visibility(frozenset())
        self.wheres: list[tuple[str, str | None]] = []  # (table, filter) of each read

    def read(self, table: str, after: Any, until: Any, where: str | None) -> Chunk | None:
        self.wheres.append((table, where))
        if table not in self.sizes:
            return None
        until = until or ([str(self.sizes[table])] if self.sizes[table] else None)
        if until is None:
            return Chunk(table, f"t.{table}", {}, None, None, self.visibility)
        start = int(after[0]) + 1 if after else 1
        keys = list(range(start, min(start + self.size, int(until[0]) + 1)))
        rows: dict[bytes | None, bytes] = {key(k): f"row {k}".encode() for k in keys}
        last: list[str | None] | None = [str(keys[-1])] if keys and keys[-1] < int(until[0]) else None
        return Chunk(table, f"t.{table}", rows, last, until, self.visibility)

    def watermark(self, chunk_id: str) -> None:
        self.watermarks.append(chunk_id)


class Batch:
    def __init__(self, end_lsn: int) -> None:
        self.end_lsn = end_lsn


def key(k: int) -> bytes:
    return json.dumps({"id": k}).encode()


def run_chunk(snap: IncrementalSnapshot, source: Source, lsn: int,
              seen: tuple[int, ...] = ()) -> list[bytes | None]:
    """One chunk: read, the stream's changes of `seen` keys, the watermark, Kafka's ack."""
    snap.take_chunk(source)
    for k in seen:
        snap.seen(key(k))
    chunk = snap.watermark(source.watermarks[-1])
    assert chunk is not None
    snap.published(Batch(lsn))
    snap.acknowledged(lsn)
    return list(chunk.rows)


@pytest.mark.parametrize(("signal", "reason"), [
    (row("1", "alert"), "type 'alert' is not one this connector acts on"),
    (row("2", data="{not json"), "data is not JSON"),
    (row("3", data=[1, 2]), "data is not a JSON object"),
    (row("4", data={"data-collections": ["public.dossiers"], "type": "blocking"}), "only incremental"),
    (row("4n", data={"data-collections": ["public.dossiers"], "type": None}), "type None is not supported"),
    (row("4l", data={"data-collections": ["public.dossiers"], "type": ["incremental"]}), "not supported"),
    (row("1l", "log", {"text": "hello"}), "a log signal needs a message"),
    (row("4s", data={"data-collections": ["public.dossiers"], "surrogate-key": "code"}),
     "surrogate-key is not supported"),
    (row("4c", data={"data-collections": ["public.dossiers"], "additional-conditions": "id < 10"}),
     "additional-conditions is not a list"),
    (row("4e", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers"}]}), "needs a data-collection and a non-empty filter"),
    (row("4f", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossier", "filter": "id < 10"}]}),
     "names public.dossier, which is not in data-collections"),
    (row("4g", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers", "filter": "id < 10"},
        {"data-collection": "dossiers", "filter": "id > 2"}]}), "names public.dossiers twice"),
    (row("4h", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers", "filter": "true; DELETE FROM dossiers"}]}),
     "is not one SQL condition"),
    (row("4i", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers", "filter": "id < 10 --"}]}), "is not one SQL condition"),
    (row("4j", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers", "filter": "status = 10) OR (status = 10"}]}),
     "parentheses and quotes closed"),
    (row("4k", data={"data-collections": ["public.dossiers"], "additional-conditions": [
        {"data-collection": "public.dossiers", "filter": "note = 'it''s"}]}), "parentheses and quotes closed"),
    (row("4m", data={"data-collections": ["public.dossiers"], "additional-condition": "note = 'x'"}),
     "additional-condition is not understood"),
    (row("4d", data="[" * 100_000), "data is not JSON"),
    (row("5", data={"data-collections": "public.dossiers"}), "not a list of table names"),
    (row("6", data={"type": "incremental"}), "names no table"),
    (row("7", data={"data-collections": ["db.public.dossiers"]}), "is not a table name"),
])
def test_a_signal_it_cannot_act_on_is_refused_with_the_reason(signal: dict[str, Any], reason: str) -> None:
    parsed = parse_signal(signal)
    assert isinstance(parsed, str) and reason in parsed


def test_a_signal_names_tables_as_debezium_does() -> None:
    parsed = parse_signal(row("9", data={"data-collections": ["dossiers", 'public."payments"']}))
    assert not isinstance(parsed, str)
    assert parsed.tables == ("public.dossiers", "public.payments") and parsed.action == "execute-snapshot"
    assert not isinstance(stop := parse_signal(row("10", "stop-snapshot", {})), str) and stop.tables == ()
    filtered = parse_signal(row("11", data={"data-collections": ["dossiers", "public.payments"],
                                            "additional-conditions": [
                                                {"data-collection": "dossiers", "filter": " status = 5 "}]}))
    assert not isinstance(filtered, str) and filtered.filters == {"public.dossiers": "status = 5"}


def test_a_paused_snapshot_reads_no_chunk_until_resumed_even_across_a_restart(caplog) -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 7})
    snap.signal(row("p0", "pause-snapshot", {}), 90)
    assert "no incremental snapshot is running" in caplog.text
    snap.signal(row("s1"), 100)
    snap.take_chunk(source)  # keys 1-3, waiting for its watermark
    snap.signal(row("p1", "pause-snapshot", {"type": "incremental"}), 110)
    assert snap.table == "public.dossiers"  # the chunk read still sees the stream's changes
    snap.seen(key(2))
    chunk = snap.watermark(source.watermarks[-1])
    assert chunk is not None and list(chunk.rows) == [key(1), key(3)]  # published as usual
    snap.published(Batch(10))
    snap.acknowledged(10)
    assert not snap.wants_chunk() and snap.table is None  # no read, and the stream's fast path
    assert kept[-1]["paused"] and kept[-1]["after"] == ["3"]
    resumed = IncrementalSnapshot(TABLES, kept[-1], kept.append)  # a restart
    assert "paused until a resume-snapshot signal" in caplog.text and not resumed.wants_chunk()
    resumed.signal(row("r1", "resume-snapshot", {}), 120)
    assert resumed.wants_chunk() and run_chunk(resumed, source, 20) == [key(4), key(5), key(6)]
    assert len(source.watermarks) == 2


def test_a_read_that_meets_a_lock_is_made_again_later_and_a_chunk_that_does_not_advance_ends_the_table(
        caplog) -> None:
    clock = [100.0]
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append, clock=lambda: clock[0])
    source = Source({"public.dossiers": 7})
    snap.signal(row("s1"), 100)
    real_read = source.read
    source.read = lambda *args: (_ for _ in ()).throw(ChunkDeferred("lock timeout"))  # type: ignore[method-assign]
    snap.take_chunk(source)
    assert snap.table == "public.dossiers" and not snap.wants_chunk() and not source.watermarks
    clock[0] += 1.0
    source.read = real_read  # type: ignore[method-assign]
    assert snap.wants_chunk() and run_chunk(snap, source, 10) == [key(1), key(2), key(3)]
    # A source that hands back the chunk it gave before (a filter that escaped its bounds):
    source.read = lambda *args: Chunk("public.dossiers", "t", {key(3): b"row 3"}, ["3"], ["7"],  # type: ignore[method-assign]
                                      Visibility(frozenset()))
    snap.take_chunk(source)
    assert "ended at that key again; skipped" in caplog.text and snap.table is None and kept[-1] is None


def test_a_log_signal_writes_its_message_to_the_log(caplog) -> None:
    caplog.set_level(logging.INFO, "onestop.capture.incremental")
    snap = IncrementalSnapshot(TABLES, None, lambda _: None)
    snap.signal(row("l1", "log", {"message": "trước khi nâng cấp"}), 100)
    assert "signal l1: trước khi nâng cấp" in caplog.text and snap.table is None


def test_a_filtered_read_keeps_its_condition_across_chunks_and_a_restart(caplog) -> None:
    caplog.set_level(logging.INFO, "onestop.capture.incremental")
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 5, "public.payments": 2})
    snap.signal(row("f1", data={"data-collections": ["public.dossiers", "public.payments"],
                                "additional-conditions": [
                                    {"data-collection": "public.dossiers", "filter": "status = 5"}]}), 100)
    assert "public.dossiers (rows where status = 5), public.payments" in caplog.text
    run_chunk(snap, source, 10)
    assert kept[-1]["filters"] == {"public.dossiers": "status = 5"}
    # The same table asked for again unfiltered while it is read: the read goes on as it was.
    snap.signal(row("f2"), 200)
    assert "public.dossiers already being read with another filter" in caplog.text
    resumed = IncrementalSnapshot(TABLES, kept[-1], kept.append)  # a restart
    run_chunk(resumed, source, 20)
    run_chunk(resumed, source, 30)
    assert source.wheres == [("public.dossiers", "status = 5")] * 2 + [("public.payments", None)]
    assert kept[-1] is None and resumed.table is None


def test_a_table_is_read_in_chunks_in_key_order_and_the_stream_overtakes_the_chunk() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 7})
    snap.signal(row("s1"), 100)
    assert snap.table == "public.dossiers" and kept[-1]["tables"] == ["public.dossiers"]
    assert run_chunk(snap, source, 10, seen=(2, 9)) == [key(1), key(3)]  # 2 was changed meanwhile
    assert kept[-1]["after"] == ["3"]
    assert run_chunk(snap, source, 20) == [key(4), key(5), key(6)]
    assert run_chunk(snap, source, 30) == [key(7)]
    assert snap.table is None and not snap.wants_chunk() and kept[-1] is None


def test_a_read_that_misses_a_transaction_the_stream_delivered_is_done_again(caplog) -> None:
    """PostgreSQL writes a commit to the WAL a moment before it makes it visible (longer
    when it waits for a synchronous standby): the stream may deliver a change that the next
    read cannot see yet, and the older row read would be published after it."""
    now = [0.0]
    snap = IncrementalSnapshot(TABLES, None, lambda _p: None, clock=lambda: now[0])
    source = Source({"public.dossiers": 9})
    snap.committed(95)
    snap.signal(row("s1"), 100)
    source.visibility = Visibility(frozenset({95, 97}))  # 95 delivered, not yet visible
    snap.take_chunk(source)
    assert snap.chunk is None and source.watermarks == [] and not snap.wants_chunk()
    for _ in range(700):  # 35 s of refusals, one read every 50 ms: the operator is told once
        now[0] += 0.05
        assert snap.wants_chunk()
        snap.take_chunk(source)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "incremental snapshot of public.dossiers waits for transactions [95], committed but not "
        "yet visible (a commit waiting for a synchronous standby?)"]
    now[0] += 0.05
    source.visibility = Visibility(frozenset({97}))  # visible now; 97 is not delivered yet
    assert run_chunk(snap, source, 10) == [key(1), key(2), key(3)]
    for xid in range(100, 100 + 10_001):  # only the latest transactions are remembered
        snap.committed(xid)
    source.visibility = Visibility(frozenset({100}))
    assert run_chunk(snap, source, 20) == [key(4), key(5), key(6)]
    assert Visibility.parse(f"{2**32 + 7}:{2**32 + 9}:{2**32 + 8},4294967295").running == {8, 2**32 - 1}


def test_progress_is_kept_only_once_kafka_has_the_chunk() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 9})
    snap.signal(row("s1"), 100)
    run_chunk(snap, source, 10)
    snap.take_chunk(source)
    assert snap.watermark(source.watermarks[-1]) is not None
    snap.published(Batch(20))
    snap.acknowledged(15)  # an earlier transaction
    assert kept[-1]["after"] == ["3"] and not snap.wants_chunk()
    snap.restart()  # the session ends before Kafka has the second chunk: it is read again
    assert snap.wants_chunk()
    assert run_chunk(snap, source, 40) == [key(4), key(5), key(6)]


def test_a_restart_resumes_after_the_last_key_kafka_has() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 9})
    snap.signal(row("s1"), 100)
    run_chunk(snap, source, 10)
    resumed = IncrementalSnapshot(TABLES, kept[-1], kept.append)
    assert run_chunk(resumed, source, 20) == [key(4), key(5), key(6)]
    resumed.signal(row("s1"), 100)  # the signal read again, the slot not yet past it: ignored
    assert run_chunk(resumed, source, 30) == [key(7), key(8), key(9)]
    assert kept[-1] is None


def test_a_watermark_of_an_earlier_session_publishes_nothing() -> None:
    snap = IncrementalSnapshot(TABLES, None, lambda _p: None)
    source = Source({"public.dossiers": 9})
    snap.signal(row("s1"), 100)
    snap.take_chunk(source)
    snap.restart()
    assert snap.watermark(source.watermarks[-1]) is None
    snap.take_chunk(source)
    assert snap.watermark("an-old-one") is None and snap.chunk is not None


def test_tables_are_read_one_after_the_other_and_unknown_or_vanished_ones_are_skipped() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.payments": 2})
    named = ["public.other", "public.dossiers", "public.payments"]
    snap.signal(row("s1", data={"data-collections": named}), 100)
    assert kept[-1]["tables"] == ["public.dossiers", "public.payments"]  # public.other: not configured
    snap.take_chunk(source)  # public.dossiers cannot be read (dropped since): skipped
    assert snap.table == "public.payments" and kept[-1]["tables"] == ["public.payments"]
    assert run_chunk(snap, source, 10) == [key(1), key(2)]
    assert snap.table is None and kept[-1] is None


def test_a_second_signal_while_reading_adds_its_tables_to_what_a_restart_resumes() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 9, "public.payments": 1})
    snap.signal(row("s1"), 100)
    snap.take_chunk(source)
    snap.signal(row("s2", data={"data-collections": ["public.payments"]}), 200)  # a chunk is in flight
    assert kept[-1]["tables"] == ["public.dossiers", "public.payments"] and kept[-1]["after"] is None
    assert kept[-1]["done_signals"] == [100, 200]


def test_stop_snapshot_stops_the_named_tables_or_all() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 9, "public.payments": 9})
    snap.signal(row("s1", data={"data-collections": ["public.dossiers", "public.payments"]}), 100)
    snap.take_chunk(source)
    snap.signal(row("s2", "stop-snapshot", {"data-collections": ["public.dossiers"]}), 200)
    assert snap.table == "public.payments" and snap.chunk is None  # the chunk read is dropped
    assert kept[-1]["tables"] == ["public.payments"] and kept[-1]["after"] is None
    run_chunk(snap, source, 10)
    snap.signal(row("s3", "stop-snapshot", {}), 300)
    assert snap.table is None and kept[-1] is None


def test_a_table_taken_out_of_source_tables_before_a_restart_is_not_read_on() -> None:
    kept: list[Any] = []
    snap = IncrementalSnapshot(TABLES, None, kept.append)
    source = Source({"public.dossiers": 9, "public.payments": 2})
    snap.signal(row("s1", data={"data-collections": ["public.dossiers", "public.payments"]}), 100)
    run_chunk(snap, source, 10)
    resumed = IncrementalSnapshot(frozenset({"public.payments"}), kept[-1], kept.append)
    resumed.take_chunk(source)
    assert resumed.table == "public.payments" and kept[-1]["tables"] == ["public.payments"]
    assert run_chunk(resumed, source, 20) == [key(1), key(2)] and kept[-1] is None


def test_an_id_used_again_is_a_new_signal_and_only_the_same_insert_is_ignored(caplog) -> None:
    """Signals are told apart by their place in the WAL: an operator who deletes
    `resnap-5` and inserts it again gets a snapshot; the same insert read after a restart
    does not start a second one."""
    snap = IncrementalSnapshot(TABLES, None, lambda _p: None)
    source = Source({"public.dossiers": 2})
    snap.signal(row("resnap-5"), 100)
    run_chunk(snap, source, 10)
    assert snap.table is None
    snap.signal(row("resnap-5"), 100)  # read again
    assert snap.table is None
    snap.signal(row("resnap-5"), 900)  # inserted again
    assert snap.table == "public.dossiers"


def test_a_stop_says_what_kafka_is_left_with_and_progress_is_logged(caplog) -> None:
    snap = IncrementalSnapshot(TABLES, None, lambda _p: None)
    source = Source({"public.dossiers": 250_000}, size=50_000)
    with caplog.at_level(logging.INFO, logger="onestop.capture.incremental"):
        snap.signal(row("s1"), 100)
        for lsn in (10, 20, 30):
            run_chunk(snap, source, lsn)
        snap.signal(row("s2", "stop-snapshot", {}), 200)
    messages = [r.getMessage() for r in caplog.records]
    assert "incremental snapshot of public.dossiers: 100000 rows so far, up to key ['100000']" in messages
    assert ("signal s2: incremental snapshot of public.dossiers stopped; Kafka keeps only the rows "
            "read so far (an execute-snapshot signal reads the table again)") in messages

