"""deploy/postgres/*.sql on a real PostgreSQL: the least-privilege roles can do their job and
nothing more (the DBA runs exactly these scripts, and so does the compose stack)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2.extras import LogicalReplicationConnection
import pytest

from deploy_helpers import DEPLOY, ROOT

pytestmark = pytest.mark.services

HEARTBEAT_TABLE = "public.onestop_heartbeat"
SIGNAL_TABLE = "public.onestop_signal"


def psql(pg: Any, dbname: str, script: str, **variables: str) -> subprocess.CompletedProcess[str]:
    args = [str(pg.bin_dir / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
            "-U", pg.superuser, "-d", dbname, "-v", "ON_ERROR_STOP=1"]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    return subprocess.run([*args, "-f", script], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture(scope="module")
def onestop_db(pg: Any) -> Iterator[str]:
    """A fresh one-stop database: reference schema, then the DBA script, applied twice."""
    name = "deploy_onestop"
    admin = pg.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    assert psql(pg, name, str(ROOT / "schemas" / "reference.sql")).returncode == 0
    # Idempotent: a re-run only re-applies grants, the tables named with or without schema.
    for heartbeat, signals in ((HEARTBEAT_TABLE, SIGNAL_TABLE), ("onestop_heartbeat", "onestop_signal")):
        result = psql(pg, name, str(DEPLOY / "postgres" / "least-privilege.sql"),
                      capture_password="capture-pw", lookup_password="lookup-pw",
                      heartbeat_table=heartbeat, signal_table=signals)
        assert result.returncode == 0, result.stderr
    with closing(pg.connect(dbname=name)) as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                    "applicant_name, applicant_phone, status) VALUES ('000.00.23.H39-241128-0001', "
                    "'1.001234', 'Cấp giấy phép xây dựng', 'UBND huyện Đức Hòa', 'Nguyễn Văn A', "
                    "'0909123456', 2)")
    yield name
    with admin.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name LIKE 'deploy_test_%'")
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def connect_as(pg: Any, role: str, dbname: str) -> Any:
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=role, dbname=dbname)
    conn.autocommit = True
    return conn


def test_a_second_captured_schema_is_usable_by_the_capture_role_only(pg: Any, onestop_db: str) -> None:
    """The lookup role reads public.dossiers and nothing else (it was given every schema)."""
    name = "deploy_two_schemas"
    admin = pg.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        assert psql(pg, name, str(ROOT / "schemas" / "reference.sql")).returncode == 0
        with closing(pg.connect(dbname=name)) as conn, conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA hs; CREATE TABLE hs.attachments (id int PRIMARY KEY)")
        result = psql(pg, name, str(DEPLOY / "postgres" / "least-privilege.sql"),
                      tables="public.dossiers,hs.attachments", publication="two_schemas")
        assert result.returncode == 0, result.stderr
        with closing(pg.connect(dbname=name)) as conn, conn.cursor() as cur:
            cur.execute("SELECT has_schema_privilege('onestop_capture', 'hs', 'USAGE'), "
                        "has_schema_privilege('onestop_lookup', 'hs', 'USAGE'), "
                        "has_table_privilege('onestop_capture', 'hs.attachments', 'SELECT')")
            assert cur.fetchone() == (True, False, True)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_publication_is_filtered_to_the_captured_tables(pg: Any, onestop_db: str) -> None:
    with closing(pg.connect(dbname=onestop_db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT puballtables FROM pg_publication WHERE pubname = 'onestop_bridge'")
        assert cur.fetchone() == (False,)
        cur.execute("SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                    "WHERE pubname = 'onestop_bridge' ORDER BY 1")
        assert [row[0] for row in cur.fetchall()] == ["public.dossiers", HEARTBEAT_TABLE, SIGNAL_TABLE]


def test_capture_role_reads_streams_and_heartbeats_but_cannot_write(pg: Any, onestop_db: str) -> None:
    conn = connect_as(pg, "onestop_capture", onestop_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.dossiers")  # the initial snapshot
            assert cur.fetchone() == (1,)
            cur.execute("SELECT pg_create_logical_replication_slot('deploy_test_slot', 'pgoutput')")
            # Debezium's heartbeat.action.query, exactly as configured.
            config = json.loads((DEPLOY / "debezium" / "onestop-dossiers.json").read_text())
            cur.execute(config["config"]["heartbeat.action.query"])
            # The built-in connector's heartbeat write.
            cur.execute(f"INSERT INTO {HEARTBEAT_TABLE} (id, ts) VALUES (1, now()) "
                        "ON CONFLICT (id) DO UPDATE SET ts = excluded.ts")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("UPDATE public.dossiers SET status = 9")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("ALTER PUBLICATION onestop_bridge SET TABLE public.dossiers")
            # An incremental snapshot's watermark; the signals themselves are the operators'.
            cur.execute("SELECT pg_logical_emit_message(true, 'onestop-incremental-watermark', 'x')")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(f"INSERT INTO {SIGNAL_TABLE} VALUES ('s', 'execute-snapshot', '{{}}')")
            cur.execute("SELECT pg_drop_replication_slot('deploy_test_slot')")
    finally:
        conn.close()


def test_lookup_role_reads_only_what_a_citizen_is_shown(pg: Any, onestop_db: str) -> None:
    conn = connect_as(pg, "onestop_lookup", onestop_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT code, procedure_name, status, due_at, agency_name FROM dossiers "
                        "WHERE code = '000.00.23.H39-241128-0001'")
            assert cur.fetchone()[2] == 2
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT applicant_name FROM dossiers")
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("CREATE TEMP TABLE scratch (x int)")
        with conn.cursor() as cur, pytest.raises(psycopg2.Error):
            cur.execute("UPDATE dossiers SET note = 'x'")
        with conn.cursor() as cur:
            cur.execute("SELECT rolreplication FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False,)
    finally:
        conn.close()


def test_ledger_script_creates_a_database_the_ledger_role_owns(pg: Any) -> None:
    for _ in range(2):
        result = psql(pg, "postgres", str(DEPLOY / "postgres" / "ledger.sql"), ledger_password="pw")
        assert result.returncode == 0, result.stderr
    try:
        conn = connect_as(pg, "onestop_ledger", "onestop_ledger")
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE probe (id int)")  # owner: may create its tables
            cur.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False, False)
        conn.close()
        # The tokens and phones inside are the owner's: another login (capture, lookup) is refused.
        as_admin(pg, "DROP ROLE IF EXISTS deploy_other_login", "CREATE ROLE deploy_other_login LOGIN")
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            connect_as(pg, "deploy_other_login", "onestop_ledger")
    finally:
        as_admin(pg, "DROP DATABASE IF EXISTS onestop_ledger WITH (FORCE)", "DROP ROLE IF EXISTS deploy_other_login")


def as_admin(pg: Any, *statements: str) -> None:
    admin = pg.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    admin.close()


def test_slot_takeover_lets_the_capture_role_see_its_walsenders_replies(pg: Any, onestop_db: str) -> None:
    """Without pg_read_all_stats pg_stat_replication hides reply_time even from the
    walsender's own role, and capture never takes over a slot it cannot judge."""
    def sees_state() -> bool:
        holder = psycopg2.connect(host="127.0.0.1", port=pg.port, user="onestop_capture",
                                  dbname=onestop_db, connection_factory=LogicalReplicationConnection)
        try:
            holder.cursor().start_replication(slot_name="deploy_test_takeover", decode=False, options={
                "proto_version": "1", "publication_names": "onestop_bridge"})
            with closing(connect_as(pg, "onestop_capture", onestop_db)) as conn, conn.cursor() as cur:
                cur.execute("SELECT state FROM pg_stat_replication WHERE pid = %s",
                            (holder.info.backend_pid,))
                return cur.fetchone() not in (None, (None,))
        finally:
            holder.close()

    with closing(connect_as(pg, "onestop_capture", onestop_db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot('deploy_test_takeover', 'pgoutput')")
    assert not sees_state()
    result = psql(pg, onestop_db, str(DEPLOY / "postgres" / "least-privilege.sql"), slot_takeover="on")
    try:
        assert result.returncode == 0, result.stderr
        assert sees_state()
    finally:
        with closing(pg.connect(dbname=onestop_db)) as conn, conn, conn.cursor() as cur:
            cur.execute("REVOKE pg_read_all_stats FROM onestop_capture")
