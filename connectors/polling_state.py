"""The polling connector's durable memory: a small SQLite file (`source.state_path`).

Per table it keeps the cursor (highest `updated_at` emitted) and whether the first full
pass is done, and per row the version last emitted: its `updated_at` and a digest of its
content. The per-row versions serve two purposes: dedupe inside the overlap window (a row
re-read unchanged is not emitted again; changed within the same second, it is) and the
"c" versus "u" decision (an id never emitted before by this connector is a create). State
is written only after Kafka acknowledged the records it covers, so a crash re-emits
(duplicates) rather than skips.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from bridge.errors import ConfigError

_CHUNK = 500


class PollState:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("CREATE TABLE IF NOT EXISTS cursor (tbl TEXT PRIMARY KEY, ts TEXT, "
                            "snapshot_done INTEGER NOT NULL DEFAULT 0)")
            self.db.execute("CREATE TABLE IF NOT EXISTS seen (tbl TEXT NOT NULL, id TEXT NOT NULL, "
                            "version TEXT NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID")
        except sqlite3.Error as exc:
            # Never replaced silently: a new file would mean a new snapshot (no notices).
            raise ConfigError(f"the polling state file {self.path} (source.state_path) cannot be "
                              f"used: {exc}; restore it, or move it away to start over with a "
                              "new snapshot") from None

    def cursor(self, table: str) -> tuple[str | None, bool]:
        row = self.db.execute("SELECT ts, snapshot_done FROM cursor WHERE tbl = ?", (table,)).fetchone()
        return (None, False) if row is None else (row[0], bool(row[1]))

    def versions(self, table: str, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(
                f"SELECT id, version FROM seen WHERE tbl = ? AND id IN ({marks})", (table, *chunk)))
        return found

    def commit(self, table: str, seen: dict[str, str], ts: str | None, snapshot_done: bool) -> None:
        """One atomic step: the rows just acknowledged and the new cursor."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO seen (tbl, id, version) VALUES (?, ?, ?) "
                                "ON CONFLICT (tbl, id) DO UPDATE SET version = excluded.version",
                                [(table, k, v) for k, v in seen.items()])
            self.db.execute("INSERT INTO cursor (tbl, ts, snapshot_done) VALUES (?, ?, ?) "
                            "ON CONFLICT (tbl) DO UPDATE SET ts = excluded.ts, "
                            "snapshot_done = max(cursor.snapshot_done, excluded.snapshot_done)",
                            (table, ts, int(snapshot_done)))

    def restart_snapshot(self, table: str) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE cursor SET snapshot_done = 0, ts = NULL WHERE tbl = ?", (table,))

    def close(self) -> None:
        self.db.close()
