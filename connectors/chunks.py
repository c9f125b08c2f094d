"""An incremental snapshot's reads and watermarks (connectors/incremental.py), on the
connector's catalog connection: each read one REPEATABLE READ transaction, each watermark
its own, committed after the read (the connection is in autocommit between them)."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from connectors.envelope import envelope_bytes, pg_source
from connectors.incremental import WATERMARK_PREFIX, Chunk, ChunkDeferred, Key, Visibility
from connectors.pgcatalog import TableInfo, TableRef, describe_table, ensure_publication
from connectors.snapshot import row_reader, text_columns

log = logging.getLogger("onestop.capture.incremental")
# The stream waits while a chunk is read, so a read must end well inside the walsender's
# timeout (wal_sender_timeout, 60 s by default) or every new session would read it again. Only
# a filter that few rows of a large table meet comes near it (the rows are walked in key order):
# such a read is stopped at a third of that timeout, at most READ_TIMEOUT_MS. Waiting for a
# lock (ALTER TABLE, VACUUM FULL, a migration) is not the read's fault: given up after
# LOCK_TIMEOUT_MS and tried again later, whatever the table.
READ_TIMEOUT_MS = 20_000
LOCK_TIMEOUT_MS = 2_000
# The connection is gone or the server is going down: the session ends, and the next one
# reads the chunk again. Any other error is the read's (its filter, a dropped table, a grant).
_CONNECTION_CODES = ("57P01", "57P02", "57P03")


class _Table:
    """What reading one table in key order needs, described once per session."""

    def __init__(self, info: TableInfo, types: list[str]) -> None:
        self.info = info
        # Qualified: a bare name in ORDER BY would mean the select list's `id::text`, in text order.
        self.source = sql.SQL("{} AS src").format(info.ref.ident())
        keys = [sql.Identifier("src", k) for k in info.primary_key]
        self.order = sql.SQL(", ").join(keys)
        self.key = sql.SQL("({})").format(self.order)
        self.columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in info.columns)
        self.bound = sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("%s::" + t) for t in types))
        self.key_text = sql.SQL(", ").join(sql.SQL("{}::text").format(k) for k in keys)
        self.descending = sql.SQL(", ").join(sql.SQL("{} DESC").format(k) for k in keys)
        names = [c.name for c in info.columns]
        self.positions = [names.index(k) for k in info.primary_key]


class Chunks:
    def __init__(self, conn: PgConnection, publication: str, prefix: str, db: str, schemas: bool,
                 size: int, timezone: str) -> None:
        self.conn, self.publication, self.prefix, self.db = conn, publication, prefix, db
        self.schemas, self.size = schemas, size
        self.timezone = timezone  # a filter's times mean what the operator means: local ones
        self._tables: dict[str, _Table | None] = {}
        with conn.cursor() as cur:  # milliseconds; 0: no timeout
            cur.execute("SELECT setting::int FROM pg_settings WHERE name = 'wal_sender_timeout'")
            row = cur.fetchone()
        sender_ms = row[0] if row and row[0] else 0
        self.read_timeout_ms = min(READ_TIMEOUT_MS, sender_ms // 3) if sender_ms else READ_TIMEOUT_MS

    def forget(self, table: str) -> None:
        """The table changed shape (a Relation message): describe it again."""
        self._tables.pop(table, None)

    def read(self, table: str, after: Key | None, until: Key | None, where: str | None) -> Chunk | None:
        """The rows after `after` up to `until` (None: the largest key now) that meet `where`, in
        key order, with the snapshot that read them; None for a table that cannot be read in chunks."""
        t = self._table(table)
        if t is None:
            return None
        try:
            # '%' doubled: the queries carry parameters (LIKE 'x%' is a filter's own).
            return self._read(table, t, after, until, sql.SQL(where.replace("%", "%%")) if where else None)
        except psycopg2.Error as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            if self.conn.closed or exc.pgcode is None or exc.pgcode[:2] == "08" \
                    or exc.pgcode in _CONNECTION_CODES:
                raise
            if isinstance(exc, psycopg2.errors.LockNotAvailable) or (
                    isinstance(exc, psycopg2.errors.QueryCanceled) and where is None):
                raise ChunkDeferred(f"{first} (a lock held, or the read cancelled)") from None
            if isinstance(exc, psycopg2.errors.QueryCanceled):
                first += (f": a chunk took longer than {self.read_timeout_ms / 1000:g} s; index the "
                          "filter's column or narrow it")
            # A bad filter, the table dropped meanwhile, a grant revoked: this table only.
            self._skip(table, where, first)
        return None

    def _skip(self, table: str, where: str | None, why: str) -> None:
        log.error("incremental snapshot: cannot read %s%s (%s); skipped", table,
                  f" where {where}" if where else "", why)
        self.forget(table)

    def _read(self, table: str, t: _Table, after: Key | None, until: Key | None,
              where: sql.Composable | None) -> Chunk:
        schema = t.info.schema(self.prefix)
        with self.conn.cursor() as cur:
            # One snapshot for all three statements, and what it saw (incremental.Visibility).
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                cur.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                if where is not None:  # only a filter makes a read long; its times are local
                    cur.execute(f"SET LOCAL statement_timeout = {self.read_timeout_ms}")
                    cur.execute("SELECT set_config('TimeZone', %s, true)", (self.timezone,))
                cur.execute("SELECT pg_current_snapshot()::text")
                visibility = Visibility.parse(cur.fetchone()[0])
                if until is None:
                    cur.execute(sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT 1").format(
                        t.key_text, t.source, _where([where]), t.descending), [])
                    row = cur.fetchone()
                    until = list(row) if row else None
                fetched = self._fetch(cur, t, after, until, where) if until is not None else []
            finally:
                cur.execute("COMMIT")
        last = [fetched[-1][i] for i in t.positions] if fetched else None
        finished = len(fetched) < self.size or last == until
        return Chunk(table, schema.topic, self._records(schema, fetched), None if finished else last,
                     until, visibility)

    def _fetch(self, cur: Any, t: _Table, after: Key | None, until: Key,
               where: sql.Composable | None) -> list[Any]:
        # The upper bound outside the LIMIT: inside, a table without statistics yet (loaded
        # and not analysed) gets a bitmap scan and a sort of the whole range on every chunk
        # (122 ms instead of 0.3 for 1,024 of 300,000 rows) rather than the index walk.
        after_sql = sql.SQL("{} > {}").format(t.key, t.bound) if after is not None else None
        cur.execute(sql.SQL(
            "SELECT {} FROM (SELECT {} FROM {} {} ORDER BY {} LIMIT {}) AS src WHERE {} <= {} ORDER BY {}"
        ).format(text_columns(t.info), t.columns, t.source, _where([after_sql, where]), t.order,
                 sql.Literal(self.size), t.key, t.bound, t.order), [*(after or []), *until])
        return list(cur.fetchall())

    def _records(self, schema: Any, fetched: list[Any]) -> dict[bytes | None, bytes]:
        # No LSN: the rows are read, not streamed (Debezium's incremental reads carry none).
        source = pg_source(self.prefix, self.db, schema, time.time_ns() // 1000, "incremental",
                           None, None, None)
        read_row, schemas = row_reader(schema), self.schemas
        records: dict[bytes | None, bytes] = {}
        for values in fetched:
            row = read_row(values)
            records[schema.key_for(row, schemas)] = envelope_bytes(schema, None, row, source, "r", schemas)
        return records

    def _table(self, table: str) -> _Table | None:
        if table not in self._tables:
            self._tables[table] = self._describe(table)
        return self._tables[table]

    def _describe(self, table: str) -> _Table | None:
        info = describe_table(self.conn, TableRef.parse(table))
        if info is None:
            log.error("incremental snapshot: table %s no longer exists; skipped", table)
            return None
        if not info.primary_key:
            log.error("incremental snapshot: table %s has no primary key to read it in chunks by; "
                      "skipped (ALTER TABLE … ADD PRIMARY KEY, then signal again)", table)
            return None
        info = ensure_publication(self.conn, self.publication, [info])[0]  # its column list
        with self.conn.cursor() as cur:
            cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = %s AND attname = ANY(%s)", (info.oid, list(info.primary_key)))
            types = dict(cur.fetchall())
        return _Table(info, [types[k] for k in info.primary_key])

    def watermark(self, chunk_id: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_logical_emit_message(true, %s, %s)", (WATERMARK_PREFIX, chunk_id))


def _where(conditions: list[sql.Composable | None]) -> sql.Composable:
    """`WHERE (a) AND (b)` of the conditions given; nothing when there are none."""
    given = [sql.SQL("({})").format(c) for c in conditions if c is not None]
    return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(given)) if given else sql.SQL("")
