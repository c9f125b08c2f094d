"""Database URLs as operators write them, for SQLAlchemy: the ledger, the OA lookup and the
polling connector open theirs here.

SQLAlchemy 2.1 made psycopg 3 the driver of a bare ``postgresql://`` URL; this package
installs psycopg2. Without this, the URLs libpq, the deploy examples and most operators
write — ``postgresql://…``, or Heroku's ``postgres://…`` — fail at start-up with "No module
named 'psycopg'". A bare URL therefore means psycopg2 unless psycopg 3 is installed.
A URL that does not parse, or names a driver this installation lacks, is a ConfigError
that names the setting (and never quotes the URL: it may hold a password).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import sqlalchemy as sa

from bridge.errors import ConfigError


def engine_url(url: str | sa.URL, setting: str = "the database URL") -> sa.URL:
    """`url` parsed, with a PostgreSQL driver this installation has."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"{setting} is not a database URL (dialect+driver://user:password@host/"
                          "database, e.g. postgresql://…)") from None
    if parsed.drivername not in ("postgresql", "postgres"):
        return parsed
    return parsed.set(drivername="postgresql" if _psycopg3_installed() else "postgresql+psycopg2")


def create_engine(setting: str, url: str | sa.URL, **options: Any) -> sa.Engine:
    """`sqlalchemy.create_engine` on `engine_url(url)`, with a ConfigError naming `setting`
    when the URL does not parse or its driver is missing."""
    parsed = engine_url(url, setting)
    try:
        return sa.create_engine(parsed, **options)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        extra = _EXTRAS.get(parsed.get_backend_name())
        how = f"pip install 'onestop-bridge[{extra}]' (docs/connectors.md, Polling mode)" \
            if extra else "install it"
        raise ConfigError(f"{setting}: no usable driver for {parsed.drivername!r} here ({exc}); "
                          f"{how}, or use postgresql:// (psycopg2 is installed)") from None


# The package extras (pyproject.toml) that bring each database's driver.
_EXTRAS = {"mssql": "mssql", "mysql": "mysql", "mariadb": "mysql", "oracle": "oracle"}


def _psycopg3_installed() -> bool:
    return importlib.util.find_spec("psycopg") is not None
