"""Database URLs as operators write them, for SQLAlchemy.

SQLAlchemy 2.1 made psycopg 3 the driver of a bare ``postgresql://`` URL; this package
installs psycopg2. Without this, the URLs libpq, the deploy examples and most operators
write — ``postgresql://…``, or Heroku's ``postgres://…`` — fail at start-up with "No module
named 'psycopg'". A bare URL therefore means psycopg2 unless psycopg 3 is installed.
"""

from __future__ import annotations

import importlib.util

import sqlalchemy as sa


def engine_url(url: str | sa.URL) -> sa.URL:
    """`url` parsed, with a PostgreSQL driver this installation has; ArgumentError if it
    is not a database URL."""
    parsed = sa.make_url(url)
    if parsed.drivername not in ("postgresql", "postgres"):
        return parsed
    return parsed.set(drivername="postgresql" if _psycopg3_installed() else "postgresql+psycopg2")


def _psycopg3_installed() -> bool:
    return importlib.util.find_spec("psycopg") is not None
