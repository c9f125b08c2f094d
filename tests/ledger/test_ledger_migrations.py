"""Schema migrations: ordered, idempotent, concurrent-safe, and in step with tables.py."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, text

from bridge.errors import ConfigError
from bridge.ledger import current_version, migrate
from bridge.ledger.engine import make_engine
from bridge.ledger.migrate import Migration, discover
from bridge.ledger.migrations import add_column
from bridge.ledger.tables import metadata


def test_fresh_ledger_gets_every_migration_once(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    newest = discover()[-1].version
    assert migrate(engine) == [m.version for m in discover()]
    assert current_version(engine) == newest
    assert migrate(engine) == [], "a second run changes nothing"
    engine.dispose()


def test_migrated_schema_matches_the_query_tables(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)
    found = inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in found.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    engine.dispose()


def test_an_appended_migration_runs_after_the_released_ones(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)

    def followers_profile(conn: Connection) -> None:
        add_column(conn, "follower_links", Column("display_name", String(200)))
        Table("ratings", MetaData(), Column("id", String(40), primary_key=True)).create(conn)

    extra = discover() + [Migration(9001, "followers_profile", followers_profile)]
    assert migrate(engine, extra) == [9001]
    columns = {c["name"] for c in inspect(engine).get_columns("follower_links")}
    assert "display_name" in columns and inspect(engine).has_table("ratings")
    # A bridge that does not know 9001 refuses the newer ledger instead of guessing.
    with pytest.raises(ConfigError, match="newer"):
        migrate(engine)
    engine.dispose()


def test_a_ledger_rolled_back_by_its_version_rows_upgrades_again(ledger_url: str) -> None:
    """The runbook's rollback deletes the version rows the older release does not know (the
    tables, columns and indexes stay, unused by it); the newer release started again
    re-applies those migrations over what is there: every one must run twice."""
    engine = make_engine(ledger_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_version WHERE version > 1"))
    assert current_version(engine) == 1
    assert migrate(engine) == [m.version for m in discover()[1:]]
    assert current_version(engine) == discover()[-1].version
    engine.dispose()


def test_a_failing_migration_leaves_the_previous_version(ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    migrate(engine)

    def broken(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(engine, discover() + [Migration(9002, "broken", broken)])
    assert current_version(engine) == discover()[-1].version
    assert not inspect(engine).has_table("half_done"), "DDL rolled back with the version row"
    engine.dispose()


def test_instances_starting_together_migrate_once(ledger_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[int]] = []

    def start() -> None:
        engine = make_engine(ledger_url)
        try:
            applied.append(migrate(engine))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(sum(applied, [])) == [m.version for m in discover()]


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ConfigError, match="in-memory"):
        make_engine("sqlite://")
    with pytest.raises(ConfigError, match="unsupported"):
        make_engine("mysql://x@localhost/db")


def test_sqlite_connections_keep_a_small_page_cache(tmp_path) -> None:
    """Memory stays flat on a long backlog: a dozen pooled connections with SQLite's default
    2 MB cache each grew the bridge by ~25 MB as the ledger grew (bench/delivery_pipeline.py)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -512
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
