"""Catch-up after a redone snapshot: the transactions the new snapshot already contains.

A first snapshot creates the slot itself with EXPORT_SNAPSHOT, so streaming starts exactly
where the snapshot ends and there is nothing to catch up. When a snapshot must be redone
(the previous attempt was interrupted, or snapshot_mode=always) the slot is *kept* and the
new snapshot is exported by a temporary slot at a later point S. The kept slot then
replays the transactions committed before S; the snapshot already shows their inserts and
updates, so those are not re-emitted (their logical decoding messages, in no snapshot,
are), but it cannot show what they deleted — and an
interrupted attempt may already have published those rows. So deletes are collected
(cancelled again by a later insert or update of the same key) and published when the
stream passes S: no row published by an aborted attempt stays alive in Kafka without
its delete, and no row is deleted that exists at S.

A table added to `source.tables` later is snapshotted the same way, alone: the catch-up
then covers only the added tables, and the other tables' changes in those transactions
are streamed as usual (they are in no snapshot).
"""

from __future__ import annotations

from typing import Any

from connectors.envelope import TableSchema


class CatchUp:
    def __init__(self, switch_lsn: int, tables: frozenset[str] | None = None) -> None:
        self.switch_lsn = switch_lsn
        self.tables = tables  # "schema.table" the snapshot read; None: every table
        self.deletes: dict[tuple[str, bytes | None], tuple[TableSchema, dict[str, Any]]] = {}
        self.end_lsn = 0  # end of the last caught-up transaction
        self.active = False  # inside a caught-up transaction

    def covers(self, commit_lsn: int) -> bool:
        """True for a transaction the snapshot already contains."""
        return commit_lsn < self.switch_lsn

    def skips(self, table: str) -> bool:
        """True for a change, inside a covered transaction, that the snapshot already shows."""
        return self.active and (self.tables is None or table in self.tables)

    def record(self, schema: TableSchema, op: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> None:
        if not schema.key_columns:
            return  # keyless rows cannot be tombstoned
        if before is not None:
            old = schema.key_of(before)
            if op == "d" or (after is not None and schema.key_of(after) != old):
                self.deletes[(schema.topic, schema.key_bytes(old, False))] = (schema, before)
        if after is not None:
            self.deletes.pop((schema.topic, schema.key_bytes(schema.key_of(after), False)), None)

    def passed(self, wal_end: int) -> bool:
        """The server has sent everything before the switch point."""
        return not self.active and wal_end >= self.switch_lsn
