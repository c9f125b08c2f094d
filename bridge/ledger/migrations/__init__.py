"""Ledger schema migrations, one module per version: ``vNNNN_short_name.py``.

See ``bridge/ledger/migrate.py`` for the rules. Helpers for migration authors live
here so that every migration can stay a few lines of DDL.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, inspect
from sqlalchemy.schema import Index

# Autoincrementing 64-bit key that SQLite also treats as its rowid alias.
AutoId = BigInteger().with_variant(Integer, "sqlite")


def add_column(conn: Connection, table: str, column: Column) -> None:  # type: ignore[type-arg]
    """ALTER TABLE … ADD COLUMN, portable across SQLite and PostgreSQL. A column already there
    is left alone: a ledger rolled back by deleting its version row (docs/runbook.md)
    still has it, and upgrading again must not fail on it."""
    if column.name in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    ddl_type = column.type.compile(dialect=conn.dialect)
    null = "" if column.nullable else " NOT NULL"
    default = ""
    if column.server_default is not None:
        default = f" DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column.name} {ddl_type}{default}{null}")


def create_index(conn: Connection, index: Index) -> None:
    """CREATE INDEX, unless the ledger has it already (see `add_column`)."""
    index.create(conn, checkfirst=True)
