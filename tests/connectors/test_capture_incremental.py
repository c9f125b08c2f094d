"""Incremental snapshots on a signal (connectors/incremental.py), against the real
PostgreSQL and broker: a table read again in chunks while its changes keep streaming, and
each key's last record in Kafka is the row as it is in the database."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import psycopg2.extensions
import pytest

from bridge.errors import ConfigError
from capture_support import Record, reconnects
from connectors import chunks as chunks_module
from connectors.chunks import Chunks
from connectors.incremental import ChunkDeferred, IncrementalSnapshot
from waiting import wait_for

pytestmark = pytest.mark.services
SIGNALS = "public.onestop_signal"
SIGNAL_TABLE = ("CREATE TABLE public.onestop_signal (id varchar(42) PRIMARY KEY, "
                "type varchar(32) NOT NULL, data varchar(2048))")


def add_rows(conn: Any, count: int, start: int = 0) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                    "applicant_name, applicant_phone, status) SELECT 'INC-' || g, '1.001234', "
                    "'Cấp giấy phép xây dựng', 'UBND huyện Bến Lức', 'Nguyễn Văn An', "
                    "'0909123456', 1 "
                    "FROM generate_series(%s, %s) g", (start, start + count - 1))


def signal(conn: Any, signal_id: str, kind: str = "execute-snapshot",
           tables: tuple[str, ...] = ("public.dossiers",)) -> None:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO onestop_signal VALUES (%s, %s, %s)",
                    (signal_id, kind, json.dumps({"data-collections": list(tables), "type": "incremental"})))


def incremental(records: list[Record]) -> list[Record]:
    return [r for r in records if r.value and r.value["source"]["snapshot"] == "incremental"]


def last_by_key(records: list[Record]) -> dict[int, Any]:
    """Each key's last record (a tombstone as None): per-partition order is per-key order."""
    last: dict[int, Any] = {}
    for r in records:
        last[r.key["id"]] = r.value["after"] if r.value else None
    return last


def rows_now(capture_db: Any) -> dict[int, tuple[str, int]]:
    rows = capture_db.execute("SELECT id, code, status FROM dossiers")
    return {i: (code, status) for i, code, status in rows}


def test_rows_changed_or_deleted_during_a_chunk_end_in_their_latest_state(
        capture_db, start_capture, reader, monkeypatch) -> None:
    """The stream overtakes the chunk: an update and a delete committed between a chunk's
    read and its watermark must win over the rows read, not be undone by them."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 250)
    touched: list[tuple[int, int]] = []
    read = chunks_module.Chunks.read

    def read_then_change(self: Any, table: str, after: Any, until: Any, where: Any) -> Any:
        result = read(self, table, after, until, where)
        records = result.rows if result else None
        if records and len(touched) < 6:
            first, second = (json.loads(k or b"null")["id"] for k in list(records)[:2])
            with conn.cursor() as cur:  # both commit before the chunk's watermark is written
                cur.execute("UPDATE dossiers SET status = 5 WHERE id = %s", (first,))
                cur.execute("DELETE FROM dossiers WHERE id = %s", (second,))
            touched.extend([(first, 5), (second, 0)])
        return result

    monkeypatch.setattr(chunks_module.Chunks, "read", read_then_change)
    capture = start_capture(capture_db.settings(signal_table=SIGNALS, incremental_chunk_size=100))
    topic = reader()
    topic.wait(lambda r: len(r) >= 250, message="the initial snapshot")
    signal(conn, "sig-1")
    finished(capture, topic)
    assert len(touched) == 6  # three chunks, a row updated and a row deleted in each
    records = after_a_last_row(conn, topic, 10_000)
    read_again = incremental(records)
    now = rows_now(capture_db)
    last = last_by_key(records)
    assert {k: (v["code"], v["status"]) for k, v in last.items() if v} == now
    assert {k for k, v in last.items() if v is None} == {k for k, status in touched if status == 0}
    # Every other row was read again, once, as an incremental read; the touched ones were not.
    touched_ids = {k for k, _ in touched}
    assert sorted(r.key["id"] for r in read_again) == sorted(set(now) - touched_ids - {max(now)})
    assert all(r.value["op"] == "r" and r.value["source"]["txId"] is None for r in read_again)
    conn.close()


def test_changes_stream_on_while_a_table_is_read_and_end_in_their_latest_state(
        capture_db, start_capture, reader) -> None:
    conn, capture, topic = captured(capture_db, start_capture, reader, 2_000, chunk_size=50)
    stop = threading.Event()

    def write() -> None:  # updates, inserts and deletes all through the incremental snapshot
        writer = capture_db.connect()
        n = 0
        while not stop.is_set():
            n += 1
            with writer.cursor() as cur:
                cur.execute("UPDATE dossiers SET status = %s WHERE id = (SELECT min(id) + %s FROM dossiers)",
                            (n % 10 + 1, (n * 37) % 1_900))
                if n % 7 == 0:
                    cur.execute("DELETE FROM dossiers WHERE id = (SELECT min(id) + %s FROM dossiers)",
                                ((n * 53) % 1_900,))
                if n % 5 == 0:
                    add_rows(writer, 1, start=100_000 + n)
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        signal(conn, "sig-busy")
        finished(capture, topic)
    finally:
        stop.set()
        thread.join(30)
    records = after_a_last_row(conn, topic, 900_000)
    now = rows_now(capture_db)
    last = last_by_key(records)
    assert {k: (v["code"], v["status"]) for k, v in last.items() if v} == now
    assert len(incremental(records)) > 1_000  # most rows were read again while the writes went on
    conn.close()


def test_a_read_is_done_again_while_a_change_the_stream_delivered_is_not_yet_visible(
        capture_db, start_capture, reader, monkeypatch) -> None:
    """A commit that waits for a synchronous standby is in the WAL, so the stream delivers
    it, but no other session sees it yet: a chunk read then would publish the row as it was
    before, after the change."""
    capture_db.execute(SIGNAL_TABLE)
    capture_db.execute(f'ALTER DATABASE "{capture_db.name}" SET synchronous_commit = local')
    conn = capture_db.connect()
    add_rows(conn, 300)
    reads = [0]
    read = chunks_module.Chunks.read

    def counted(self: Any, *args: Any) -> Any:
        reads[0] += 1
        return read(self, *args)

    monkeypatch.setattr(chunks_module.Chunks, "read", counted)
    capture = start_capture(capture_db.settings(signal_table=SIGNALS, incremental_chunk_size=100))
    topic = reader()
    topic.wait(lambda r: len(r) >= 300, message="the initial snapshot")
    first = min(rows_now(capture_db))
    admin = capture_db.pg.connect()
    admin.autocommit = True
    waiting = capture_db.connect()
    held: threading.Thread | None = None
    try:
        with admin.cursor() as cur:  # a standby that never answers: a commit waits for it
            cur.execute("ALTER SYSTEM SET synchronous_standby_names = 'onestop_test_nobody'")
            cur.execute("SELECT pg_reload_conf()")
        waiting.cursor().execute("SET synchronous_commit = on")
        # The server applies the setting a moment after the reload: commit until one is held.
        status = 10
        while held is None:
            status -= 1
            assert status > 1, "no commit was held for the synchronous standby"
            held = hold_commit(capture_db, waiting, first, status)
        topic.wait(lambda r: any(x.key["id"] == first and x.value and x.value["after"]["status"] == status
                                 for x in r), message="the held change, delivered")
        assert capture_db.execute("SELECT status FROM dossiers WHERE id = %s", (first,)) != [(status,)]
        signal(conn, "sig-hidden")
        wait_for(lambda: reads[0] >= 3, timeout=30, message="reads refused while the change is hidden")
        topic.poll()
        assert capture.runner.incremental.chunk is None and not incremental(topic.records)
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET synchronous_standby_names")
            cur.execute("SELECT pg_reload_conf()")
            cur.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
        if held is not None:
            held.join(30)
        admin.close()
    finished(capture, topic)
    records = after_a_last_row(conn, topic, 10_000)
    now = rows_now(capture_db)
    assert last_by_key(records)[first]["status"] == status == now[first][1]
    assert {k: (v["code"], v["status"]) for k, v in last_by_key(records).items() if v} == now
    waiting.close()
    conn.close()


def hold_commit(capture_db: Any, conn: Any, row_id: int, status: int) -> threading.Thread | None:
    """Commit an update on `conn` in a thread: the thread while the commit waits for the
    synchronous standby, None if it did not wait (committed)."""
    thread = threading.Thread(target=lambda: conn.cursor().execute(
        "UPDATE dossiers SET status = %s WHERE id = %s", (status, row_id)))
    thread.start()
    pid = conn.get_backend_pid()

    def settled() -> bool:
        return not thread.is_alive() or capture_db.execute(
            "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)) == [("SyncRep",)]
    wait_for(settled, timeout=10, message="the commit, waiting or done")
    return thread if thread.is_alive() else None


def test_a_restart_resumes_the_incremental_snapshot_where_kafka_has_it(
        capture_db, start_capture, reader, monkeypatch) -> None:
    conn, settings, capture, topic, release = signalled_with_a_chunk_held(
        capture_db, start_capture, reader, monkeypatch, rows=3_000, chunk_size=100, held=6)
    topic.wait(lambda r: len(incremental(r)) >= 500, message="five chunks in Kafka")
    capture.stop_event.set()  # stopped while the sixth chunk is being read
    release.set()
    capture.stop()
    saved = capture.runner.offsets.incremental
    assert saved is not None and saved["tables"] == ["public.dossiers"] and saved["after"]
    monkeypatch.undo()

    capture = start_capture(settings)
    finished(capture, topic, started=True)
    records = after_a_last_row(conn, topic, 10_000)
    now = rows_now(capture_db)
    read_again = [r.key["id"] for r in incremental(records)]
    assert set(read_again) == set(now) - {max(now)}
    # Resumed, not started over: at most the chunks in flight at the stop are read twice.
    assert len(read_again) <= 3_000 + 200, len(read_again)
    conn.close()


def test_pause_and_resume_signals_hold_the_reading_across_a_restart_while_changes_stream(
        capture_db, start_capture, reader, monkeypatch, caplog) -> None:
    """Debezium's pause-snapshot / resume-snapshot (say, a long re-read kept out of office
    hours), and its log signal."""
    caplog.set_level(logging.INFO, "onestop.capture.incremental")
    conn, settings, capture, topic, release = signalled_with_a_chunk_held(
        capture_db, start_capture, reader, monkeypatch, rows=500, chunk_size=50, held=2)
    signal(conn, "pause", "pause-snapshot", ())  # in the WAL before the second chunk's watermark
    release.set()
    wait_for(lambda: "incremental snapshot of public.dossiers paused" in caplog.text, timeout=30,
             message="the pause")
    records = after_a_last_row(conn, topic, 10_000)  # the stream goes on
    assert len(incremental(records)) == 100  # the chunk read when the pause came, and no other
    capture.stop()
    monkeypatch.undo()

    capture = start_capture(settings)
    records = after_a_last_row(conn, topic, 10_001)
    assert len(incremental(records)) == 100 and capture.runner.offsets.incremental["paused"]
    with conn.cursor() as cur:
        cur.execute("INSERT INTO onestop_signal VALUES ('resume', 'resume-snapshot', NULL), "
                    "('note', 'log', '{\"message\": \"resumed after hours\"}')")
    finished(capture, topic, started=True)
    records = after_a_last_row(conn, topic, 10_002)
    assert sorted(r.key["id"] for r in incremental(records)) == sorted(
        set(rows_now(capture_db)) - {max(rows_now(capture_db)) - i for i in range(3)})
    assert "signal note: resumed after hours" in caplog.text
    conn.close()


def test_a_lost_connection_during_the_snapshot_resumes_it_in_the_next_session(
        capture_db, start_capture, reader, monkeypatch) -> None:
    """Under the least-privilege role (REPLICATION, SELECT on the table, no grant at all on
    the signal table, which an administrator put in the publication)."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 1_000)
    held, release = hold_chunk(monkeypatch, 4)
    with capture_db.least_privilege_role() as dsn:
        capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers, onestop_signal')
        capture = start_capture(capture_db.settings(dsn=dsn, signal_table=SIGNALS,
                                                    incremental_chunk_size=100))
        topic = reader()
        topic.wait(lambda r: len(r) >= 1_000, message="the initial snapshot")
        signal(conn, "sig-lost")
        wait_for(held.is_set, timeout=30, message="three chunks read")
        ended = reconnects("connection")
        capture_db.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                           "WHERE slot_name = %s", (capture_db.name,))
        release.set()
        finished(capture, topic)
        records = after_a_last_row(conn, topic, 10_000)
        capture.stop()
    assert reconnects("connection") == ended + 1
    now = rows_now(capture_db)
    assert {r.key["id"] for r in incremental(records)} == set(now) - {max(now)}
    assert {k: (v["code"], v["status"]) for k, v in last_by_key(records).items() if v} == now
    conn.close()


def test_a_table_added_later_is_read_by_an_incremental_snapshot_while_all_streams_on(
        capture_db, start_capture, reader, monkeypatch) -> None:
    """With incremental snapshots on, a table added to source.tables is not read by the
    blocking snapshot: the changes of every table, the new one's included, stream while it
    is read, and a later start reads nothing again."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 10)
    settings = capture_db.settings(signal_table=SIGNALS, incremental_chunk_size=100)
    capture = start_capture(settings)
    dossiers = reader()
    dossiers.wait(lambda r: len(r) >= 10, message="the first snapshot")
    capture.stop()
    capture_db.add_notices(1_000)
    paused, resume = pause_after_chunks(monkeypatch, 1)
    both = settings.model_copy(update={"source": settings.source.model_copy(
        update={"tables": ["public.dossiers", "public.notices"]})})
    capture = start_capture(both)
    notices = reader(f"{capture_db.name}.public.notices")
    wait_for(paused.is_set, timeout=30, message="the added table's first chunk")
    add_rows(conn, 1, start=500)  # while the added table is being read
    capture_db.execute("UPDATE notices SET version = 1 WHERE id = 950")
    dossiers.wait(lambda r: any(x.value and x.value["after"]["code"] == "INC-500" for x in r),
                  message="a dossier change streamed during the read")
    notices.wait(lambda r: any(x.value and x.value["op"] == "u" and x.key["id"] == 950 for x in r),
                 message="a change of the added table streamed during its read")
    assert len(incremental(notices.records)) <= 100  # the snapshot is still at its first chunk
    resume.set()
    finished(capture, notices)
    expected = dict(capture_db.execute("SELECT id, version FROM notices"))
    records = notices.wait(lambda r: {k: v["version"] for k, v in last_by_key(r).items()} == expected,
                           message="every notice in its latest state")
    assert {r.key["id"] for r in incremental(records)} == set(expected)
    assert not incremental(dossiers.records)  # only the added table is read
    capture.stop()
    monkeypatch.undo()
    capture = start_capture(both)
    after_a_last_row(conn, dossiers, 20_000)
    notices.poll()
    assert len(incremental(notices.records)) == 1_000  # nothing read again
    conn.close()


def test_a_table_dropped_while_it_is_read_is_skipped_and_capture_streams_on(
        capture_db, start_capture, reader, monkeypatch, caplog) -> None:
    capture_db.execute(SIGNAL_TABLE)
    capture_db.add_notices(500, publish=False)
    conn = capture_db.connect()
    paused, resume = pause_after_chunks(monkeypatch, 1)
    capture = start_capture(capture_db.settings(
        tables=["public.dossiers", "public.notices"], signal_table=SIGNALS, incremental_chunk_size=100))
    notices = reader(f"{capture_db.name}.public.notices")
    notices.wait(lambda r: len(r) >= 500, message="the first snapshot")
    signal(conn, "sig-drop", tables=("public.notices",))
    wait_for(paused.is_set, timeout=30, message="the first chunk")
    capture_db.execute(f'ALTER PUBLICATION "{capture_db.name}" DROP TABLE notices; DROP TABLE notices')
    resume.set()
    finished(capture, notices)
    assert capture.alive()
    assert any("incremental snapshot: cannot read public.notices (relation" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    after_a_last_row(conn, reader(), 30_000)  # the dossiers stream on
    conn.close()


def pause_after_chunks(monkeypatch: Any, number: int) -> tuple[threading.Event, threading.Event]:
    """The incremental snapshot stops asking for chunks after `number` (set: paused) until
    resumed, while the connector streams on."""
    paused, resume = threading.Event(), threading.Event()
    wants = IncrementalSnapshot.wants_chunk
    take = IncrementalSnapshot.take_chunk
    taken = [0]

    def counted(self: Any, source: Any) -> None:
        taken[0] += 1
        take(self, source)

    def held(self: Any) -> bool:
        if taken[0] >= number and not resume.is_set():
            paused.set()
            return False
        return wants(self)

    monkeypatch.setattr(IncrementalSnapshot, "take_chunk", counted)
    monkeypatch.setattr(IncrementalSnapshot, "wants_chunk", held)
    return paused, resume


def signalled_with_a_chunk_held(capture_db: Any, start_capture: Any, reader: Any, monkeypatch: Any, *,
                                rows: int, chunk_size: int, held: int) -> tuple[Any, Any, Any, Any, threading.Event]:
    """`rows` dossiers captured, then read again on a signal in chunks of `chunk_size`; the
    `held`th chunk's read is under way and waits for the event returned (connection,
    settings, capture, reader, release)."""
    waiting, release = hold_chunk(monkeypatch, held)
    settings = capture_db.settings(signal_table=SIGNALS, incremental_chunk_size=chunk_size)
    conn, capture, topic = captured(capture_db, start_capture, reader, rows, settings=settings)
    signal(conn, f"sig-{held}-of-{chunk_size}")
    wait_for(waiting.is_set, timeout=30, message=f"chunk {held} being read")
    return conn, settings, capture, topic, release


def captured(capture_db: Any, start_capture: Any, reader: Any, rows: int, chunk_size: int = 1024,
             settings: Any = None) -> tuple[Any, Any, Any]:
    """`rows` dossiers and the signal table, captured up to the end of the initial snapshot
    (`settings`, or the signal table and `chunk_size`): (connection, capture, reader)."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, rows)
    capture = start_capture(settings or capture_db.settings(signal_table=SIGNALS,
                                                            incremental_chunk_size=chunk_size))
    topic = reader()
    topic.wait(lambda r: len(r) >= rows, message="the initial snapshot")
    return conn, capture, topic


def hold_chunk(monkeypatch: Any, number: int) -> tuple[threading.Event, threading.Event]:
    """The `number`th chunk read waits (set: held) until released."""
    reads, held, release = [0], threading.Event(), threading.Event()
    read = chunks_module.Chunks.read

    def held_read(self: Any, *args: Any) -> Any:
        reads[0] += 1
        if reads[0] == number:
            held.set()
            release.wait(30)
        return read(self, *args)

    monkeypatch.setattr(chunks_module.Chunks, "read", held_read)
    return held, release


def finished(capture: Any, topic: Any, started: bool = False) -> None:
    """Wait for the incremental snapshot to end: it began (records, or `started`), nothing
    is left to read, and the progress record is gone."""
    def done() -> bool:
        topic.poll()
        runner = capture.alive() and capture.runner
        return bool((started or incremental(topic.records)) and runner.incremental is not None
                    and runner.incremental.read is None and runner.offsets.incremental is None)
    wait_for(done, timeout=60, message="the incremental snapshot")


def after_a_last_row(conn: Any, topic: Any, number: int) -> list[Record]:
    """A row inserted now, and everything before it in Kafka."""
    add_rows(conn, 1, start=number)
    code = f"INC-{number}"
    return topic.wait(lambda r: any(x.value and x.value["after"] and x.value["after"]["code"] == code
                                    for x in r), message="the last row")


def test_signals_it_cannot_act_on_are_logged_and_capture_goes_on(
        capture_db, start_capture, reader, caplog) -> None:
    """The signal table is the operators' input, and a row stays in the WAL: one the
    connector cannot read must not stop it at every start."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 50)
    capture = start_capture(capture_db.settings(signal_table=SIGNALS))
    topic = reader()
    topic.wait(lambda r: len(r) >= 50, message="the initial snapshot")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO onestop_signal VALUES ('null-type', 'execute-snapshot', "
                    "'{\"data-collections\": [\"public.dossiers\"], \"type\": null}'), "
                    "('filtered', 'execute-snapshot', '{\"data-collections\": [\"public.dossiers\"], "
                    "\"additional-conditions\": [{\"data-collection\": \"public.dossiers\", "
                    "\"filter\": \"id < 10; DELETE FROM dossiers\"}]}')")
    signal(conn, "good")
    finished(capture, topic)  # Kafka has every row read; the reader may not have polled them yet
    records = topic.wait(lambda r: len(incremental(r)) >= 50, message="the rows read again")
    assert len(incremental(records)) == 50
    ignored = sorted(r.getMessage() for r in caplog.records if "ignored" in r.getMessage())
    assert ignored == ["signal filtered ignored: the filter for public.dossiers is not one SQL condition "
                       "(no ';', '--' or '/*', parentheses and quotes closed): 'id < 10; DELETE FROM dossiers'",
                       "signal null-type ignored: snapshot type None is not supported; only incremental"]
    conn.close()


def test_a_filtered_signal_reads_again_only_the_rows_that_meet_its_condition(
        capture_db, start_capture, reader, caplog, monkeypatch) -> None:
    """Debezium's additional-conditions, e.g. to send again only the dossiers of one status
    or received since a date. A filter PostgreSQL refuses, or one too slow to read a chunk
    by (the stream waits meanwhile), skips the table with the reason."""
    monkeypatch.setattr(chunks_module, "READ_TIMEOUT_MS", 300)
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 300)
    with conn.cursor() as cur:
        cur.execute("UPDATE dossiers SET status = 5 WHERE id % 3 = 0")
    capture = start_capture(capture_db.settings(signal_table=SIGNALS, incremental_chunk_size=40))
    topic = reader()
    topic.wait(lambda r: len(r) >= 300, message="the initial snapshot")

    def filtered(signal_id: str, where: str) -> None:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO onestop_signal VALUES (%s, 'execute-snapshot', %s)", (signal_id, json.dumps(
                {"data-collections": ["public.dossiers"],
                 "additional-conditions": [{"data-collection": "public.dossiers", "filter": where}]})))

    filtered("typo", "stauts = 5")
    wait_for(lambda: "cannot read public.dossiers where stauts = 5 (column \"stauts\" does not exist" in caplog.text,
             timeout=30, message="the refused filter's log line")
    filtered("slow", "(SELECT count(*) FROM pg_sleep(1)) = 1")
    wait_for(lambda: "cannot read public.dossiers where (SELECT count(*) FROM pg_sleep(1)) = 1 (canceling "
             "statement due to statement timeout: a chunk took longer than 0.3 s" in caplog.text,
             timeout=30, message="the slow filter's log line")
    ended = reconnects("connection")
    filtered("not-yet", "id > lastval() - 1000")  # an error psycopg2 calls operational: still the filter's
    wait_for(lambda: "cannot read public.dossiers where id > lastval() - 1000 (lastval is not yet defined"
             in caplog.text, timeout=30, message="the filter's error, not a lost connection")
    assert reconnects("connection") == ended
    filtered("status-5", "status = 5 AND code LIKE 'INC-%'")  # '%': the query's parameters are apart
    finished(capture, topic)
    expected = [i for i, (_, status) in sorted(rows_now(capture_db).items()) if status == 5]
    records = topic.wait(lambda r: len(incremental(r)) >= 100, message="the rows read again")
    read_again = [r.key["id"] for r in incremental(records)]
    assert len(expected) == 100 and sorted(read_again) == expected  # each once
    assert capture.alive()
    conn.close()


def test_a_filters_times_are_local_and_the_rows_read_are_encoded_as_streamed(
        capture_db, start_capture, reader) -> None:
    """`received_at >= '2026-12-16'` means local midnight (source.timezone), as it does to the
    operator in psql; read in the connector's UTC session it missed the first seven hours."""
    capture_db.execute(SIGNAL_TABLE)
    conn = capture_db.connect()
    add_rows(conn, 4)
    with conn.cursor() as cur:
        for n, (i,) in zip(("2026-12-15 23:30+07", "2026-12-16 00:30+07", "2026-12-16 06:59+07",
                            "2026-12-16 08:00+07"), capture_db.execute("SELECT id FROM dossiers ORDER BY id")):
            cur.execute("UPDATE dossiers SET received_at = %s WHERE id = %s", (n, i))
    capture = start_capture(capture_db.settings(signal_table=SIGNALS))
    topic = reader()
    first = {r.key["id"]: r.value["after"] for r in topic.wait(lambda r: len(r) >= 4, message="the snapshot")}
    with conn.cursor() as cur:
        cur.execute("INSERT INTO onestop_signal VALUES ('since-16', 'execute-snapshot', %s)", (json.dumps(
            {"data-collections": ["public.dossiers"], "additional-conditions": [
                {"data-collection": "public.dossiers", "filter": "received_at >= '2026-12-16'"}]}),))
    finished(capture, topic)
    records = topic.wait(lambda r: len(incremental(r)) >= 3, message="the rows since local midnight")
    again = {r.key["id"]: r.value["after"] for r in incremental(records)}
    assert len(again) == 3 and all(again[i] == first[i] for i in again)  # same bytes as the first read
    conn.close()


def test_a_table_locked_meanwhile_is_waited_for_not_skipped(
        capture_db, start_capture, reader, monkeypatch) -> None:
    """An ALTER TABLE, a VACUUM FULL or a migration holds the table: the chunk is read again
    once the lock is gone. A 20 s statement timeout used to skip the rest of the table (for a
    table added to source.tables, for good)."""
    monkeypatch.setattr(chunks_module, "LOCK_TIMEOUT_MS", 100)
    deferred = [0]
    read = chunks_module.Chunks.read

    def counted(self: Any, *args: Any) -> Any:
        try:
            return read(self, *args)
        except ChunkDeferred:
            deferred[0] += 1
            raise

    monkeypatch.setattr(chunks_module.Chunks, "read", counted)
    conn, capture, topic = captured(capture_db, start_capture, reader, 300, chunk_size=50)
    locker = capture_db.connect()
    locker.autocommit = False
    with locker.cursor() as cur:
        cur.execute("LOCK TABLE dossiers IN ACCESS EXCLUSIVE MODE")
    signal(conn, "locked")
    wait_for(lambda: deferred[0] >= 2, timeout=30, message="reads put off while the table is locked")
    locker.rollback()
    locker.close()
    finished(capture, topic)
    records = topic.wait(lambda r: len(incremental(r)) >= 300, message="every row, once the lock is gone")
    assert sorted(r.key["id"] for r in incremental(records)) == sorted(rows_now(capture_db))
    conn.close()


def test_a_missing_signal_table_stops_capture_with_the_statement_to_create_it(
        capture_db, start_capture) -> None:
    capture = start_capture(capture_db.settings(signal_table=SIGNALS))
    capture.thread.join(30)
    assert isinstance(capture.error, ConfigError)
    assert "CREATE TABLE public.onestop_signal (id varchar(42) PRIMARY KEY" in str(capture.error)


class _Recording(psycopg2.extensions.cursor):
    queries: list[bytes] = []

    def execute(self, query: Any, vars: Any = None) -> Any:  # noqa: A002 - psycopg2's name
        result = super().execute(query, vars)
        _Recording.queries.append(self.query or b"")
        return result


def test_a_chunk_is_read_by_walking_the_key_index_even_before_the_table_has_statistics(capture_db) -> None:
    """A table just loaded has no statistics: each chunk must still be an index walk of its
    1,024 rows, not a scan and sort of every row after it."""
    conn = capture_db.connect()
    add_rows(conn, 20_000)
    capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers')
    conn.cursor_factory = _Recording
    _Recording.queries = []
    chunks = Chunks(conn, capture_db.name, capture_db.name, capture_db.name, False, 1_024, "Asia/Ho_Chi_Minh")
    first = chunks.read("public.dossiers", None, None, None)
    second = chunks.read("public.dossiers", first.last, first.until, None) if first else None
    assert first is not None and second is not None
    keys = [json.loads(k or b"null")["id"] for k in [*first.rows, *second.rows]]
    assert keys == sorted(keys) and len(set(keys)) == 2_048 and second.last is not None
    [query] = [q for q in _Recording.queries[-6:] if b"LIMIT" in q and b"> (" in q]
    conn.cursor_factory = psycopg2.extensions.cursor
    plan = "\n".join(r[0] for r in capture_db.execute(b"EXPLAIN " + query))
    assert "Index Scan using dossiers_pkey" in plan and "Bitmap" not in plan, plan
    conn.close()
