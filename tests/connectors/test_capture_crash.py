"""`kill -9` of the connector process at random points — during the snapshot, inside a
3,000-row transaction, between transactions — loses nothing: after the last restart every
row's final state is in Kafka, each key's versions arrive without gaps and in order, and
the only anomaly is re-sent records from the unconfirmed tail (their ratio is reported)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from capture_support import Record, insert_dossier
from waiting import wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


class Workload(threading.Thread):
    """Inserts, versioned updates and deletes in small transactions, plus two 3,000-row ones."""

    def __init__(self, db, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.db, self.rng = db, rng
        self.big_requested = threading.Event()
        self.big_committed = threading.Event()
        self.finish = threading.Event()
        self.error: BaseException | None = None

    def big(self) -> None:
        """Run the next 3,000-row transaction now and wait for its commit."""
        self.big_committed.clear()
        self.big_requested.set()
        assert self.big_committed.wait(30), "big transaction not committed"

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _run(self) -> None:
        conn = self.db.connect()
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("SELECT id FROM dossiers")
        live = [row[0] for row in cur.fetchall()]
        conn.commit()
        n, big_done = 0, 0
        while not self.finish.is_set():
            if self.big_requested.is_set():
                self.big_requested.clear()
                if big_done == 0:  # one transaction inserting 3,000 rows
                    cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                                "applicant_name, status) SELECT 'BIG-' || g, '1.1', 'P', 'A', 'B', 1 "
                                "FROM generate_series(1, 3000) g RETURNING id")
                    live += [row[0] for row in cur.fetchall()]
                else:  # one transaction updating 3,000 rows
                    cur.execute("UPDATE dossiers SET version = version + 1 WHERE id IN "
                                "(SELECT id FROM dossiers ORDER BY id DESC LIMIT 3000)")
                conn.commit()
                big_done += 1
                self.big_committed.set()
                continue
            action = self.rng.random()
            if action < 0.4 or len(live) < 10:
                for _ in range(self.rng.randint(1, 5)):
                    live.append(insert_dossier(conn, f"W-{n}"))
                    n += 1
            elif action < 0.95:
                chosen = self.rng.sample(live, self.rng.randint(1, 20))
                cur.execute("UPDATE dossiers SET version = version + 1, status = 1 + version %% 10 "
                            "WHERE id = ANY(%s)", (chosen,))
            else:
                victim = live.pop(self.rng.randrange(len(live)))
                cur.execute("DELETE FROM dossiers WHERE id = %s", (victim,))
            conn.commit()
            time.sleep(0.005)
        conn.close()


def _wait_log(log: Path, text: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    def seen() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        return log.exists() and log.read_text().count(text) >= count

    wait_for(seen, timeout=60, interval=0.01, message=f"{text!r} x{count} in the connector log")


def _start(db, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **db.env(ONESTOP_SOURCE__HEARTBEAT_INTERVAL_S="1", **extra)}
    return subprocess.Popen([sys.executable, "-m", "connectors", "--metrics-port", "0"], cwd=ROOT,
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _check_key(records: list[Record]) -> tuple[int | None, int, int]:
    """One key's records in partition order → (final version or None if deleted, duplicated
    snapshot reads, duplicated streamed changes).

    Streamed versions must arrive exactly once each, in order (+1 steps). A record at or
    below the highest version seen must be an exact repeat (the re-sent unconfirmed tail).
    Snapshot reads ("r") may jump: a snapshot interrupted by the kill is redone from the
    current state, as Debezium does.
    """
    highest, deleted, reread, replayed = -1, False, 0, 0
    seen: dict[int, dict] = {}
    for record in records:
        value = record.value
        if value is None:
            continue  # tombstone: checked through its delete
        if value["op"] == "d":
            deleted = True
            continue
        after = value["after"]
        version = after["version"]
        if version <= highest:
            assert seen.get(version) == after, f"{record.key}: version {version} differs on replay"
            if value["op"] == "r":
                reread += 1
            else:
                replayed += 1
            continue
        if value["op"] != "r":
            assert version == highest + 1, f"gap: version {highest} then {version} for {record.key}"
        highest = version
        seen[version] = after
    return (None if deleted else highest), reread, replayed


def _versioned_dossiers(db, count: int) -> tuple[int, random.Random]:
    """`count` dossiers with a version column; the run's seed (ONESTOP_CRASH_SEED repeats one)."""
    db.execute("ALTER TABLE dossiers ADD COLUMN version int NOT NULL DEFAULT 0")
    db.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
               "applicant_name, status) SELECT 'PRE-' || g, '1.1', 'P', 'A', 'B', 2 "
               f"FROM generate_series(1, {count}) g")
    seed = int(os.environ.get("ONESTOP_CRASH_SEED", random.randrange(1 << 30)))
    return seed, random.Random(seed)


def test_kill_9_at_random_points_loses_nothing(capture_db, reader, tmp_path) -> None:
    seed, rng = _versioned_dossiers(capture_db, 5000)
    log = tmp_path / "capture.log"
    workload = Workload(capture_db, rng=rng)
    proc = _start(capture_db, log)
    workload.start()
    kills: list[str] = []
    streaming = 0
    # Where each kill lands: in the snapshot, inside a 3,000-row insert, between transactions,
    # inside a 3,000-row update, between transactions again.
    plan = ["snapshot", "big", "random", "big", "random"]
    try:
        for where in plan:
            if where == "snapshot":
                _wait_log(log, "created slot", 1, proc)
                time.sleep(rng.uniform(0.0, 0.15))
            else:
                streaming += 1
                _wait_log(log, "streaming from slot", streaming, proc)
                if where == "big":
                    workload.big()
                    time.sleep(rng.uniform(0.02, 0.3))
                else:
                    time.sleep(rng.uniform(0.1, 1.0))
            proc.kill()
            proc.wait()
            kills.append(where)
            proc = _start(capture_db, log)
        workload.finish.set()
        workload.join(60)
        assert workload.error is None, workload.error
        expected = dict(capture_db.execute("SELECT id, version FROM dossiers"))
        topic = reader()

        def complete(records: list[Record]) -> bool:
            latest: dict[int, int | None] = {}
            for r in records:
                if r.key is None:
                    continue
                latest[r.key["id"]] = None if r.value is None else r.value["after"] and r.value["after"]["version"]
            return all(latest.get(i) == v for i, v in expected.items())

        records = topic.wait(complete, timeout=90, message="every row's final state")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    by_key: dict[int, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[record.key["id"]].append(record)
    reread = replayed = 0
    for key, key_records in by_key.items():
        final, snapshot_dups, stream_dups = _check_key(key_records)
        reread += snapshot_dups
        replayed += stream_dups
        if key in expected:
            assert final == expected[key], f"id {key}: Kafka ends at {final}, database at {expected[key]}"
        else:
            assert final is None and key_records[-1].value is None, f"id {key} deleted but no tombstone"
    changes = sum(1 for r in records if r.value is not None)
    print(f"\ncrash test seed={seed}: kill -9 in {kills}; {changes} change records for "
          f"{len(by_key)} keys; duplicates: {replayed} streamed changes re-sent from unconfirmed "
          f"transactions + {reread} rows re-read by the redone snapshot = "
          f"{(replayed + reread) / changes:.1%} of records ({replayed / changes:.1%} from streaming)")
    assert len(expected) > 5000


class BothTables(threading.Thread):
    """Versioned updates of a random notice and a random dossier in each transaction."""

    def __init__(self, db, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.db, self.rng = db, rng
        self.finish = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = self.db.connect()
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("SELECT min(id), max(id) FROM dossiers")
                low, high = cur.fetchone()
                while not self.finish.is_set():
                    cur.execute("UPDATE notices SET version = version + 1 WHERE id = %s",
                                (self.rng.randint(1, 30000),))
                    cur.execute("UPDATE dossiers SET version = version + 1 WHERE id = %s",
                                (self.rng.randint(low, high),))
                    conn.commit()
                    time.sleep(0.002)
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_kill_9_while_a_table_added_later_is_snapshotted_loses_nothing(capture_db, reader, tmp_path) -> None:
    """The per-table snapshot of a table added to source.tables (connectors/handoff.py), with
    the connector killed inside that snapshot and again soon after: both tables end at their
    final versions, streamed versions arrive once each and in order, and the first table is
    never read again."""
    seed, rng = _versioned_dossiers(capture_db, 200)
    log = tmp_path / "capture.log"
    proc = _start(capture_db, log)
    _wait_log(log, "streaming from slot", 1, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-3000:]
    capture_db.add_notices(30_000)
    both = {"ONESTOP_SOURCE__TABLES": "public.dossiers,public.notices"}
    workload = BothTables(capture_db, rng)
    workload.start()
    proc = _start(capture_db, log, **both)
    try:
        _wait_log(log, "not snapshotted yet", 1, proc)
        time.sleep(rng.uniform(0.0, 0.15))  # inside the added table's snapshot, most likely
        proc.kill()
        proc.wait()
        proc = _start(capture_db, log, **both)
        _wait_log(log, "streaming from slot", 2, proc)
        time.sleep(rng.uniform(0.0, 0.3))  # in the catch-up or just after it
        proc.kill()
        proc.wait()
        proc = _start(capture_db, log, **both)
        _wait_log(log, "streaming from slot", 3, proc)
        workload.finish.set()
        workload.join(30)
        assert workload.error is None, workload.error
        for table in ("notices", "dossiers"):
            expected = dict(capture_db.execute(f"SELECT id, version FROM {table}"))
            topic = reader(f"{capture_db.name}.public.{table}")
            records = topic.wait(
                lambda rs, e=expected: {r.key["id"]: r.value["after"]["version"] for r in rs if r.value} == e,
                timeout=90, message=f"every {table} row's final state (ONESTOP_CRASH_SEED={seed}; "
                f"the connector's log: {log})")
            by_key: dict[int, list[Record]] = defaultdict(list)
            for record in sorted(records, key=lambda r: (r.partition, r.offset)):
                by_key[record.key["id"]].append(record)
            reread = sum(_check_key(key_records)[1] for key_records in by_key.values())
            if table == "dossiers":
                assert reread == 0, "the table captured all along was read again"
                assert all(rs[0].value["op"] == "r" and rs[0].value["after"]["version"] == 0
                           for rs in by_key.values())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        workload.finish.set()
    print(f"\nadded-table crash test seed={seed}: its snapshot started "
          f"{log.read_text().count('not snapshotted yet')} times")
