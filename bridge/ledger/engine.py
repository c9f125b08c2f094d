"""One SQLAlchemy engine for the ledger: a SQLite file by default, PostgreSQL in production.

SQLite runs in WAL mode with synchronous=NORMAL: a commit survives a crash of the
process (kill -9), and readers never block the writer. Python 3.11's sqlite3 module
opens transactions lazily and only before DML, so a read-then-write transaction could
fail to upgrade its lock under concurrency; the recipe from SQLAlchemy's SQLite
dialect docs takes transaction control back and every transaction starts with
BEGIN IMMEDIATE (one writer at a time, waiting `busy_timeout` for its turn) — except
connections from `reader()`, which read a snapshot without blocking the writer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from bridge import dburl
from bridge.errors import ConfigError

log = logging.getLogger("onestop.ledger")

SQLITE_CACHE_KIB = 512
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "onestop_read_only"


def make_engine(url: str, *, pool_size: int = 12) -> Engine:
    """Create the engine for `ledger.url`; ConfigError for an unusable URL."""
    parsed = dburl.engine_url(url, "ledger.url")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, pool_size)
    if parsed.get_backend_name() == "postgresql":
        return dburl.create_engine("ledger.url", parsed, pool_size=pool_size, max_overflow=4,
                                   pool_pre_ping=True, future=True)
    raise ConfigError(f"ledger.url: unsupported database {parsed.get_backend_name()!r} "
                      "(use sqlite:///FILE or postgresql://…)")


def _private_file(path: Path) -> None:
    """The ledger holds the OA's tokens and citizens' phone numbers: a new file is the
    owner's alone (SQLite gives its -wal and -shm files the same mode), whatever the umask;
    an existing one readable by others is reported, not changed."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            log.warning("the SQLite ledger %s is readable by other users (it holds the OA's tokens "
                        "and citizens' phone numbers): chmod 600 it and its -wal and -shm files", path)


def _sqlite_engine(url: str, database: str | None, pool_size: int) -> Engine:
    if not database or database == ":memory:":
        raise ConfigError("ledger.url: an in-memory SQLite ledger forgets what was sent; "
                          "use a file (sqlite:///PATH)")
    path = Path(database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    _private_file(path)
    # A pooled connection is used by one thread at a time, so check_same_thread can go.
    # LIFO: the consumer thread keeps getting the connection it just used, with warm
    # caches, instead of cycling through (and filling the caches of) all of them.
    engine = create_engine(url, pool_size=pool_size, max_overflow=4, pool_use_lifo=True,
                           connect_args={"check_same_thread": False,
                                         "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Each pooled connection has its own page cache (2 MB by default): with a dozen
        # connections they grew the bridge's memory by ~25 MB as the ledger grew. 512 KiB
        # each holds the hot index pages; the OS page cache holds the rest.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def _enable_wal(cursor: Any, attempts: int = 100) -> None:
    """Switching a new file to WAL takes an exclusive lock that SQLite's busy handler does not
    wait for; several instances opening the same new ledger at once must take turns."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def reader(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it does not take the write lock.

    ``with reader(engine) as conn: conn.execute(select(...))``. Writing through it may
    fail with "database is locked" under concurrency — use ``engine.begin()`` to write.
    """
    return engine.connect().execution_options(**{READ_ONLY: True})


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
