"""Snapshot → stream hand-off and heartbeats, against the real PostgreSQL and broker."""

from __future__ import annotations

import base64
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from bridge import metrics
from bridge.settings import load_settings
from capture_support import Record, insert_dossier
from connectors import pgcatalog as cat
from connectors.capture import PgCapture
from waiting import wait_for

pytestmark = pytest.mark.services


class Writer(threading.Thread):
    """Runs `step(cursor, n)` for n = 0, 1, … in a transaction of its own each, until stopped."""

    def __init__(self, db, step: Callable[[Any, int], None]) -> None:
        super().__init__(daemon=True)
        self.db, self.step, self.stop = db, step, threading.Event()
        self.error: BaseException | None = None
        self.commits = 0

    def run(self) -> None:
        try:
            conn = self.db.connect()
            conn.autocommit = False
            while not self.stop.is_set():
                with conn.cursor() as cur:
                    self.step(cur, self.commits)
                conn.commit()
                self.commits += 1
            conn.close()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc


def _new_row_and_a_version(cur: Any, n: int) -> None:
    cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                "applicant_name, status) VALUES (%s, '1.1', 'P', 'A', 'B', 1)", (f"LIVE-{n}",))
    cur.execute("UPDATE dossiers SET version = version + 1 WHERE id = %s", (1 + n * 7 % 10000,))


def test_rows_written_during_the_snapshot_are_neither_missed_nor_duplicated(
        capture_db, start_capture, reader) -> None:
    capture_db.execute("ALTER TABLE dossiers ADD COLUMN version int NOT NULL DEFAULT 0")
    capture_db.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                       "applicant_name, status) SELECT 'OLD-' || g, '1.1', 'P', 'A', 'B', 2 "
                       "FROM generate_series(1, 10000) g")
    snapshots_before = metrics.capture_snapshot_rows._value.get()  # noqa: SLF001
    writer = Writer(capture_db, _new_row_and_a_version)
    writer.start()
    wait_for(lambda: writer.commits > 50, message="writer running")
    capture = start_capture(capture_db.settings())
    wait_for(lambda: capture.alive() and metrics.capture_snapshot_rows._value.get() > snapshots_before,  # noqa: SLF001
             timeout=60, message="snapshot finished")
    during = writer.commits
    time.sleep(0.5)
    writer.stop.set()
    writer.join(10)
    assert writer.error is None and writer.commits > during
    expected = dict(capture_db.execute("SELECT id, version FROM dossiers"))
    topic = reader()

    def complete(records: list[Record]) -> bool:
        latest = {r.key["id"]: r.value["after"]["version"] for r in records}
        return latest == expected

    records = topic.wait(complete, timeout=90, message="every row at its final version")
    by_key: dict[int, list[dict]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[record.key["id"]].append(record.value)
    reads = creates = 0
    for key, values in by_key.items():
        first = values[0]
        assert first["op"] in ("r", "c"), (key, first["op"])
        reads += first["op"] == "r"
        creates += first["op"] == "c"
        assert [v["op"] for v in values[1:]] == ["u"] * (len(values) - 1), f"{key}: duplicate r/c"
        versions = [v["after"]["version"] for v in values]
        assert versions == list(range(versions[0], versions[0] + len(values))), f"{key}: {versions}"
    assert all(by_key[k][0]["op"] == "r" for k in range(1, 10001)), "pre-existing rows come as reads"
    assert reads >= 10000
    assert creates > 0, "some rows must have been streamed after the snapshot point"
    flags = [r.value["source"]["snapshot"] for r in records if r.value["op"] == "r"]
    assert flags.count("first") == 1 and flags.count("last") == 1
    # Debezium's initial snapshot rows carry the snapshot transaction's id (an incremental
    # snapshot's do not): one id for all, no streamed transaction's.
    snapshot_ids = {r.value["source"]["txId"] for r in records if r.value["op"] == "r"}
    streamed_ids = {r.value["source"]["txId"] for r in records if r.value["op"] != "r"}
    assert len(snapshot_ids) == 1 and isinstance(tx_id := snapshot_ids.pop(), int)
    assert tx_id not in streamed_ids
    assert {r.value["source"]["snapshot"] for r in records if r.value["op"] != "r"} == {"false"}
    capture.stop()


def test_quiet_captured_table_does_not_pin_wal_while_the_database_is_busy(
        capture_db, start_capture, reader) -> None:
    capture_db.execute("CREATE TABLE audit_log (id bigserial PRIMARY KEY, line text)")
    capture = start_capture(capture_db.settings())
    wait_for(lambda: capture.alive() and metrics.capture_connected._value.get() == 1,  # noqa: SLF001
             message="streaming")
    for _ in range(3):
        capture_db.execute("INSERT INTO audit_log (line) SELECT repeat('x', 200) FROM generate_series(1, 2000)")
        target = int(capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0][0])
        wait_for(lambda: (capture_db.confirmed_flush() or 0) >= target, timeout=20,
                 message="confirmed_flush_lsn to pass the busy table's WAL")
    lag = capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
                             "FROM pg_replication_slots WHERE slot_name = %s", (capture_db.name,))[0][0]
    assert lag < 1_000_000
    wait_for(lambda: (metrics.REGISTRY.get_sample_value("onestop_capture_last_event_age_seconds") or 0) > 1.0,
             message="event age grows")
    heartbeats = reader(f"__debezium-heartbeat.{capture_db.name}").wait(lambda r: len(r) >= 1,
                                                                       message="heartbeat record")
    assert heartbeats[0].key == {"serverName": capture_db.name} and set(heartbeats[0].value) == {"ts_ms"}
    assert metrics.capture_slot_lag_bytes._value.get() >= 0  # noqa: SLF001
    capture.stop()


def _both_tables_and_a_message(cur: Any, n: int) -> None:
    """A notice's and a dossier's version bumped, and a logical decoding message, at once."""
    cur.execute("UPDATE notices SET version = version + 1 WHERE id = %s", (1 + n * 7 % 5000,))
    cur.execute("UPDATE dossiers SET version = version + 1 "
                "WHERE id = (SELECT min(id) FROM dossiers) + %s", (n % 20,))
    cur.execute("SELECT pg_logical_emit_message(true, 'writer', %s)", (str(n),))


def _histories(records: list[Record]) -> dict[int, list[tuple[str, int]]]:
    """Per key, in Kafka's order: (op, version) of each change event."""
    by_key: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        if r.value is not None:
            by_key[r.key["id"]].append((r.value["op"], r.value["after"]["version"]))
    return by_key


def _each_change_once(history: list[tuple[str, int]], first_op: str) -> bool:
    ops, versions = [op for op, _ in history], [v for _, v in history]
    return (ops == [first_op] + ["u"] * (len(history) - 1)
            and versions == list(range(versions[0], versions[0] + len(history))))


def test_a_table_added_later_is_snapshotted_alone_while_the_others_stream_on(
        capture_db, start_capture, reader) -> None:
    """A table added to source.tables after the first snapshot (debezium.md §3: Debezium
    needs an incremental snapshot signal for it). Its rows come as reads and each of its
    changes once, in the snapshot or after it; the other table's changes, made in the same
    transactions meanwhile, are all streamed — none skipped, none read again."""
    capture_db.execute("ALTER TABLE dossiers ADD COLUMN version int NOT NULL DEFAULT 0; "
                       "INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                       "applicant_name, status) SELECT 'D-' || g, '1.1', 'P', 'A', 'B', 2 "
                       "FROM generate_series(1, 20) g")
    capture = start_capture(capture_db.settings())
    dossiers = reader()
    dossiers.wait(lambda r: len(r) >= 20, message="the first snapshot")
    capture.stop()
    capture_db.add_notices(5_000)
    writer = Writer(capture_db, _both_tables_and_a_message)
    writer.start()
    wait_for(lambda: writer.commits > 50, message="changes to both tables while capture is away")
    both = capture_db.settings(tables=["public.dossiers", "public.notices"])
    capture = start_capture(both)
    notices = reader(f"{capture_db.name}.public.notices")
    notices.wait(lambda r: sum(x.value["op"] == "r" for x in r) >= 5000, timeout=60,
                 message="the added table's snapshot")
    past = writer.commits
    wait_for(lambda: writer.commits > past + 50, message="changes after the snapshot's point")
    writer.stop.set()
    writer.join(10)
    assert writer.error is None
    for topic, table, first_op in ((notices, "notices", "r"), (dossiers, "dossiers", "r")):
        expected = dict(capture_db.execute(f"SELECT id, version FROM {table}"))
        topic.wait(lambda r, e=expected: {k: h[-1][1] for k, h in _histories(r).items()} == e,
                   timeout=60, message=f"every {table} row at its final version")
        histories = _histories(topic.records)
        bad = {k: h for k, h in histories.items() if not _each_change_once(h, first_op)}
        assert not bad, f"{table}: {dict(list(bad.items())[:3])}"
    assert all(h[0] == ("r", 0) for h in _histories(dossiers.records).values()), "read again"
    # Messages are in no snapshot: every transaction's is published, also those caught up.
    messages = reader(f"{capture_db.name}.message").wait(
        lambda r: len({x.value["message"]["content"] for x in r}) >= writer.commits, message="messages")
    assert {base64.b64decode(x.value["message"]["content"]).decode() for x in messages} == {
        str(n) for n in range(writer.commits)}

    capture.stop()  # a restart: both tables are recorded as snapshotted
    capture = start_capture(both)
    capture_db.execute("INSERT INTO notices VALUES (5001, 0)")
    notices.wait(lambda r: 5001 in _histories(r), message="streamed after a restart")
    assert _histories(notices.records)[5001] == [("c", 0)]
    assert sum(r.value["op"] == "r" for r in notices.records if r.value) == 5000
    capture.stop()

    # Taken out of source.tables, its changes are not published; put back, it is read again.
    capture = start_capture(capture_db.settings())
    capture_db.execute("UPDATE notices SET version = -1 WHERE id = 5001")
    capture_db.execute("UPDATE dossiers SET version = -1 WHERE id = (SELECT min(id) FROM dossiers)")
    (lsn,) = capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0]
    dossiers.wait(lambda r: any(x.value["after"]["version"] == -1 for x in r), message="streamed on")
    wait_for(lambda: (capture_db.confirmed_flush() or 0) >= lsn, message="the slot past the change")
    capture.stop()
    capture = start_capture(both)
    notices.wait(lambda r: _histories(r)[5001][-1] == ("r", -1), message="read again")
    capture.stop()


def test_a_start_snapshots_added_tables_and_those_of_an_unfinished_catch_up() -> None:
    """Which configured tables a start snapshots beside the stream (PgCapture._added)."""
    settings = load_settings(None, source={"dsn": "postgresql://capture@127.0.0.1:1/onestop",
                                           "tables": ["public.a", "public.b", "public.c"]},
                             kafka={"bootstrap_servers": "127.0.0.1:1"})
    capture = PgCapture(settings, threading.Event())
    tables = [cat.TableInfo(cat.TableRef("public", n), i, "d", ("id",), ()) for i, n in enumerate("abc")]

    def added(record: dict | None, confirmed: int = 100, switch: int = 50,
              switch_tables: frozenset[str] | None = None) -> set[str]:
        capture.offsets.record = record
        capture._switch_lsn, capture._switch_tables = switch, switch_tables  # noqa: SLF001
        slot = cat.SlotState("pgoutput", "onestop", None, confirmed, "reserved", None)
        return set(capture._added(tables, slot))  # noqa: SLF001

    assert added(None) == set()  # nothing recorded: the full snapshot decides
    older: dict = {"snapshot_completed": True}
    assert added(older) == set() and older["tables"] == ["public.a", "public.b", "public.c"]
    assert added({"tables": ["public.a", "public.b", "public.c"]}) == set()
    # A table no longer configured leaves the record, so that it is read again if it comes back.
    wider = {"tables": ["public.a", "public.b", "public.c", "public.gone"]}
    assert added(wider) == set() and wider["tables"] == ["public.a", "public.b", "public.c"]
    assert added({"tables": ["public.a"]}) == {"public.b", "public.c"}
    # The stream has not passed the last snapshot's point: its tables are read again with them.
    assert added({"tables": ["public.a", "public.b"]}, confirmed=40,
                 switch_tables=frozenset({"public.b"})) == {"public.b", "public.c"}
    assert added({"tables": ["public.a", "public.b"]}, confirmed=40) == {"public.a", "public.b", "public.c"}


def test_a_redone_snapshot_publishes_the_messages_of_the_transactions_it_catches_up(
        capture_db, start_capture, reader) -> None:
    """snapshot_mode=always redoes the snapshot beside the kept slot: the transactions made
    while capture was away are in the snapshot — their rows come once, as reads — but their
    logical decoding messages are in no snapshot and must still be published."""
    capture = start_capture(capture_db.settings())
    wait_for(lambda: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    capture.stop()
    conn = capture_db.connect()
    for n in range(20):
        insert_dossier(conn, f"AWAY-{n}")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_logical_emit_message(true, 'writer', %s)", (str(n),))
    conn.close()
    capture = start_capture(capture_db.settings(snapshot_mode="always"))
    messages = reader(f"{capture_db.name}.message").wait(lambda r: len(r) >= 20, message="messages")
    assert sorted(int(base64.b64decode(x.value["message"]["content"])) for x in messages) == list(range(20))
    conn = capture_db.connect()
    insert_dossier(conn, "AFTER")  # streamed behind everything caught up
    conn.close()
    records = reader().wait(lambda r: any(x.value["after"]["code"] == "AFTER" for x in r), message="the rows")
    assert sorted((r.value["after"]["code"], r.value["op"]) for r in records) == sorted(
        [(f"AWAY-{n}", "r") for n in range(20)] + [("AFTER", "c")])  # read, not streamed too
    capture.stop()
