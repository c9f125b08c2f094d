"""executemany without SQLAlchemy's per-row parameter processing; the dialect's INSERT.

The ledger's hot writes (outcomes, attempts, events seen, dossier states) are plain
strings and integers, so on SQLite the statement is compiled once and its rows go
straight to the DB-API cursor — several times cheaper per row than
`Connection.execute(stmt, rows)`, which matters at hundreds of notifications a second.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.sql import Executable

_Compiled = tuple[str, tuple[str, ...] | None, dict[str, Any]]
_cache: dict[tuple[int, str, tuple[str, ...]], _Compiled] = {}
_lock = threading.Lock()


def executemany(conn: Connection, stmt: Executable, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        # psycopg2's own executemany is a round trip per row; SQLAlchemy batches inserts
        # (insertmanyvalues), so it stays the better path there.
        conn.execute(stmt, list(rows))
        return
    keys = tuple(rows[0])
    sql, order, fixed = _compiled(conn, stmt, keys)
    if fixed:  # values written into the statement itself (status="sent" …)
        rows = [{**fixed, **row} for row in rows]
    if order is None:  # named paramstyle (psycopg2 pyformat): dicts as they are
        conn.exec_driver_sql(sql, list(rows))
    else:              # positional (sqlite qmark)
        conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in rows])


def dialect_insert(dialect: str, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (the ledger runs on PostgreSQL or SQLite)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql
        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite
    return sqlite.insert(table)


def _compiled(conn: Connection, stmt: Executable, keys: tuple[str, ...]) -> _Compiled:
    cache_key = (id(stmt), conn.dialect.name, keys)
    with _lock:
        found = _cache.get(cache_key)
    if found is not None:
        return found
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys),  # type: ignore[attr-defined]
                            for_executemany=True)
    order = tuple(compiled.positiontup) if compiled.positional else None  # type: ignore[arg-type]
    fixed = {k: v for k, v in compiled.params.items() if k not in keys}
    found = (compiled.string, order, fixed)
    with _lock:
        _cache[cache_key] = found
    return found
