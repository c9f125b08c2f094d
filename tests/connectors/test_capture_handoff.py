"""Snapshot → stream hand-off and heartbeats, against the real PostgreSQL and broker."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from bridge import metrics
from capture_support import Record
from waiting import wait_for

pytestmark = pytest.mark.services


class Writer(threading.Thread):
    """Inserts new rows and bumps versions of existing ones until stopped."""

    def __init__(self, db) -> None:
        super().__init__(daemon=True)
        self.db, self.stop = db, threading.Event()
        self.error: BaseException | None = None
        self.commits = 0

    def run(self) -> None:
        try:
            conn = self.db.connect()
            n = 0
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                                "applicant_name, status) VALUES (%s, '1.1', 'P', 'A', 'B', 1)", (f"LIVE-{n}",))
                    cur.execute("UPDATE dossiers SET version = version + 1 WHERE id = %s", (1 + n * 7 % 10000,))
                    n += 1
                    self.commits += 2
            conn.close()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc


def test_rows_written_during_the_snapshot_are_neither_missed_nor_duplicated(
        capture_db, start_capture, reader) -> None:
    capture_db.execute("ALTER TABLE dossiers ADD COLUMN version int NOT NULL DEFAULT 0")
    capture_db.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                       "applicant_name, status) SELECT 'OLD-' || g, '1.1', 'P', 'A', 'B', 2 "
                       "FROM generate_series(1, 10000) g")
    snapshots_before = metrics.capture_snapshot_rows._value.get()  # noqa: SLF001
    writer = Writer(capture_db)
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
