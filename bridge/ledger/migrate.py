"""A small, versioned schema-migration runner for the ledger.

How to add a migration (other engineers: this is all there is to it):

1. Create ``bridge/ledger/migrations/vNNNN_short_name.py`` with the next free number
   (``v0002_followers_profile.py`` …). Never edit or renumber a released migration.
2. In it, define ``def upgrade(conn: sqlalchemy.Connection) -> None``. Write the DDL
   with SQLAlchemy Core objects declared *inside the migration* (a private
   ``MetaData()``), not with the tables of ``bridge/ledger/tables.py`` — a migration
   is frozen history, ``tables.py`` is today's shape. Use portable types
   (``BigInteger().with_variant(Integer, "sqlite")`` for autoincrement keys, ``Text``
   for JSON) and ``op``-free helpers in ``bridge.ledger.migrations`` (``add_column``).
3. Add the new tables/columns to ``bridge/ledger/tables.py`` so queries can use them;
   ``tests/ledger/test_ledger_migrations.py`` fails if the two disagree.
4. Only add (tables, nullable columns, indexes), and so that the migration runs again on a
   ledger that has it (``checkfirst=True``; the helpers skip what exists): rolling back
   to an older release deletes the newer version rows, and the newer release re-applies
   them when it comes back (docs/runbook.md, "Upgrading and rolling back"); a test
   re-applies every migration.

Each migration runs in its own transaction together with its ``schema_version`` row,
so a crash leaves the ledger at a whole version. Several bridge instances starting
at once are serialised (PostgreSQL advisory lock; SQLite BEGIN IMMEDIATE). A ledger
newer than the code refuses to start instead of guessing.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (BigInteger, Column, Connection, Engine, Integer, MetaData, String, Table,
                        func, select, text)

from bridge.errors import ConfigError

log = logging.getLogger(__name__)

_MODULE_NAME = re.compile(r"^v(\d{4})_([a-z0-9_]+)$")
# Arbitrary constant: the advisory-lock id all bridge instances agree on.
_PG_LOCK_ID = 0x0_5E5B_1D6E

_meta = MetaData()
schema_version = Table(
    "schema_version", _meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at_ms", BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Connection], None]


def discover(package: str = "bridge.ledger.migrations") -> list[Migration]:
    """Every ``vNNNN_name`` module of the package, in version order."""
    pkg = importlib.import_module(package)
    found: list[Migration] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        match = _MODULE_NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        found.append(Migration(int(match.group(1)), match.group(2), module.upgrade))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate ledger migration numbers in {package}: {versions}")
    return found


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "schema_version"):
            return 0
        return int(conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0)))
                   .scalar_one())


def migrate(engine: Engine, migrations: list[Migration] | None = None) -> list[int]:
    """Bring the ledger to the newest version; return the versions applied now."""
    migrations = discover() if migrations is None else migrations
    with engine.begin() as conn:
        _lock(conn)
        schema_version.create(conn, checkfirst=True)
    applied: list[int] = []
    for migration in migrations:
        with engine.begin() as conn:
            _lock(conn)
            done = set(conn.execute(select(schema_version.c.version)).scalars())
            _refuse_newer(done, migrations)
            if migration.version in done:
                continue
            migration.upgrade(conn)
            conn.execute(schema_version.insert().values(
                version=migration.version, name=migration.name,
                applied_at_ms=int(time.time() * 1000)))
            applied.append(migration.version)
            log.info("ledger migrated", extra={"version": migration.version,
                                               "migration": migration.name})
    if not migrations:
        with engine.connect() as conn:
            _refuse_newer(set(conn.execute(select(schema_version.c.version)).scalars()), [])
    return applied


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes writers.


def _refuse_newer(done: set[int], migrations: list[Migration]) -> None:
    known = {m.version for m in migrations}
    unknown = sorted(v for v in done if v not in known)
    if unknown and unknown[-1] > max(known, default=0):
        raise ConfigError(f"the ledger is at schema version {unknown[-1]}, newer than this "
                          f"bridge knows ({max(known, default=0)}); upgrade the bridge")
