"""Ledger fixtures: every ledger test runs on a SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.ledger import Ledger


def _pg_database(pg) -> str:  # type: ignore[no-untyped-def]
    return pg.create_database(f"ledger_{uuid.uuid4().hex[:10]}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return _pg_database(request.getfixturevalue("pg"))


@pytest.fixture()
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(ledger_url)
    try:
        yield opened
    finally:
        opened.close()
