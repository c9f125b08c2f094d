"""What the connector asks PostgreSQL over a normal connection: start-up checks, table
shapes, slot state, lag. Every refusal here is a ConfigError that says what to run."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from bridge.errors import ConfigError
from connectors.envelope import Column, TableSchema
from connectors.pgoutput import lsn_to_int
from connectors.codec import Codec
from connectors.types import builtin_type, pg_codec

log = logging.getLogger("onestop.capture.catalog")


# A name SQL may carry unquoted: any other (capitals, spaces, dots) is written in quotes.
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*")
# `schema.table` or `table` as configured, each part "quoted" (doubled quotes inside) or bare.
_PART = r'"(?:[^"]|"")+"|[^."]+'
_TABLE_NAME = re.compile(rf"(?:({_PART})\.)?({_PART})")


def _unquote(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part.strip()


def quote_name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) else '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str

    @classmethod
    def parse(cls, text: str, setting: str = "source.tables") -> TableRef:
        """`schema.table` or `table` (schema public), each part as stored (`public.HoSo`) or
        quoted as in SQL (`public."HoSo"`)."""
        match = _TABLE_NAME.fullmatch(text.strip())
        if match is None:
            raise ConfigError(f"{setting}: {text.strip()!r} is not a table name (schema.table)")
        schema, name = match.groups()
        return cls(_unquote(schema) if schema else "public", _unquote(name))

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    def sql_text(self) -> str:
        """The name as a statement to paste into psql needs it."""
        return f"{quote_name(self.schema)}.{quote_name(self.name)}"

    def ident(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    codec: Codec
    not_null: bool


@dataclass(frozen=True)
class TableInfo:
    ref: TableRef
    oid: int
    replica_identity: str
    primary_key: tuple[str, ...]
    columns: tuple[CatalogColumn, ...]

    def schema(self, prefix: str) -> TableSchema:
        cols = tuple(Column(c.name, c.codec, not c.not_null) for c in self.columns)
        return TableSchema(prefix, self.ref.schema, self.ref.name, cols, self.primary_key)


_TABLE_SQL = """
SELECT c.oid, c.relreplident,
       ARRAY(SELECT a.attname FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.n)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {where} AND c.relkind IN ('r', 'p')
"""
_COLUMNS_SQL = """
SELECT attname, atttypid, atttypmod, attnotnull FROM pg_attribute
WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum
"""


def _describe(conn: PgConnection, where: str, args: tuple[object, ...]) -> TableInfo | None:
    with conn.cursor() as cur:
        cur.execute(_TABLE_SQL.format(where=where) + " LIMIT 1", args)
        row = cur.fetchone()
        if row is None:
            return None
        oid, identity, pk = row
        cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.oid = %s", (oid,))
        schema, name = cur.fetchone()
        cur.execute(_COLUMNS_SQL, (oid,))
        rows = cur.fetchall()
    codecs = column_codecs(conn, [(t, m) for _n, t, m, _nn in rows])
    columns = tuple(CatalogColumn(n, codec, nn) for (n, _t, _m, nn), codec in zip(rows, codecs, strict=True))
    return TableInfo(TableRef(schema, name), oid, identity, tuple(pk), columns)


# A user-defined type as Debezium sees it: a domain (over domains) as its base type with the
# first typmod on the way down, an enum with its labels in their sort order.
_USER_TYPES_SQL = """
WITH RECURSIVE chain(start, oid, typmod, depth) AS (
    SELECT oid, oid, -1, 0 FROM pg_type WHERE oid = ANY(%s::oid[])
  UNION ALL
    SELECT c.start, t.typbasetype, CASE WHEN c.typmod = -1 THEN t.typtypmod ELSE c.typmod END,
           c.depth + 1
    FROM chain c JOIN pg_type t ON t.oid = c.oid WHERE t.typtype = 'd')
SELECT DISTINCT ON (c.start) c.start, c.oid, c.typmod,
       CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                                            WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END
FROM chain c JOIN pg_type t ON t.oid = c.oid
ORDER BY c.start, c.depth DESC
"""


def column_codecs(conn: PgConnection, types: Sequence[tuple[int, int]]) -> tuple[Codec, ...]:
    """The codec of each (type oid, typmod); a type since dropped travels as text."""
    unknown = sorted({oid for oid, _ in types if not builtin_type(oid)})
    resolved: dict[int, tuple[int, int, list[str] | None]] = {}
    if unknown:
        with conn.cursor() as cur:
            cur.execute(_USER_TYPES_SQL, (unknown,))
            resolved = {start: (base, typmod, labels) for start, base, typmod, labels in cur.fetchall()}
    codecs = []
    for oid, typmod in types:
        base, base_typmod, labels = resolved.get(oid, (oid, -1, None))
        codecs.append(pg_codec(base, typmod if typmod != -1 else base_typmod, labels))
    return tuple(codecs)


def describe_table(conn: PgConnection, ref: TableRef) -> TableInfo | None:
    return _describe(conn, "n.nspname = %s AND c.relname = %s", (ref.schema, ref.name))


def describe_oid(conn: PgConnection, oid: int) -> TableInfo | None:
    return _describe(conn, "c.oid = %s", (oid,))


def check_tables(conn: PgConnection, tables: list[str]) -> list[TableInfo]:
    """Every configured table exists, is readable and can be keyed; otherwise say how to fix it."""
    infos = []
    for text in tables:
        ref = TableRef.parse(text)
        info = describe_table(conn, ref)
        if info is None:
            raise ConfigError(f"table {ref} (source.tables) does not exist in this database")
        grants = _missing_grants(conn, info, "SELECT")
        if grants:
            raise ConfigError(f"the capture role cannot read {ref}; an administrator must run: {grants}")
        name = ref.sql_text()
        if not info.primary_key and info.replica_identity not in ("f", "i"):
            raise ConfigError(
                f"table {ref} has no primary key: its change events would have no key and "
                f"PostgreSQL cannot publish its updates and deletes. Add a primary key "
                f"(ALTER TABLE {name} ADD PRIMARY KEY (…)) or run "
                f"ALTER TABLE {name} REPLICA IDENTITY FULL;")
        if not info.primary_key:
            log.warning("table %s has no primary key: events get a null key (as Debezium does); "
                        "per-key ordering across partitions is not guaranteed", ref)
        infos.append(info)
    return infos


def _missing_grants(conn: PgConnection, info: TableInfo, privileges: str) -> str:
    """The GRANTs the role lacks for `privileges` on the table ("" when none): table rights
    alone do not let a role use a table in a schema it may not use."""
    ref, role = info.ref, quote_name(conn.info.user)
    with conn.cursor() as cur:
        cur.execute("SELECT has_schema_privilege(%s, 'USAGE'), has_table_privilege(%s, %s)",
                    (ref.schema, info.oid, privileges))
        usage, allowed = cur.fetchone()
    return " ".join(([] if usage else [f"GRANT USAGE ON SCHEMA {quote_name(ref.schema)} TO {role};"])
                    + ([] if allowed else [f"GRANT {privileges} ON {ref.sql_text()} TO {role};"]))


def _existing(conn: PgConnection, text: str, kind: str, columns: str, then: str) -> TableInfo:
    """The table `source.<kind>_table` names; if it is missing, the CREATE TABLE to run."""
    setting = f"source.{kind}_table"
    ref = TableRef.parse(text, setting)
    info = describe_table(conn, ref)
    if info is None:
        raise ConfigError(f"{kind} table {ref} ({setting}) does not exist; an administrator must "
                          f"run: CREATE TABLE {ref.sql_text()} ({columns}); {then}")
    return info


def check_heartbeat_table(conn: PgConnection, text: str) -> None:
    """The table heartbeats are written to exists and the role may write it; else what to run."""
    info = _existing(conn, text, "heartbeat", "id int PRIMARY KEY, ts timestamptz NOT NULL",
                     "and then grant it as docs/connectors.md says, or leave source.heartbeat_table "
                     "unset (it is rarely needed)")
    ref = info.ref
    grants = _missing_grants(conn, info, "SELECT, INSERT, UPDATE")
    if grants:
        raise ConfigError(f"the capture role cannot write heartbeats to {ref} (source.heartbeat_table); "
                          f"an administrator must run: {grants}")


def check_signal_table(conn: PgConnection, text: str) -> TableInfo:
    """The signal table exists (in Debezium's layout) on a server whose pgoutput sends the
    watermarks (logical decoding messages, PostgreSQL 14+); else what to do."""
    if server_version(conn) < 140000:
        raise ConfigError("source.signal_table: incremental snapshots need PostgreSQL 14 or later "
                          "(pgoutput sends logical decoding messages from 14 on); leave it unset")
    info = _existing(conn, text, "signal", "id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, "
                     "data varchar(2048)", "and add it to the publication — deploy/postgres/"
                     "least-privilege.sql -v signal_table=… does both (docs/connectors.md, "
                     "\"Incremental snapshots\")")
    missing = {"id", "type", "data"} - {c.name for c in info.columns}
    if missing:
        raise ConfigError(f"signal table {info.ref} (source.signal_table) lacks the column(s) "
                          f"{', '.join(sorted(missing))}: it needs id, type and data, as Debezium's")
    return info


# Managed services grant replication through a role instead of the REPLICATION attribute.
_REPLICATION_ROLES = ("rds_replication", "cloudsqlsuperuser", "azure_pg_admin", "alloydbsuperuser")


def check_server(conn: PgConnection) -> None:
    """wal_level=logical and a role allowed to stream; otherwise say what to change."""
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        (wal_level,) = cur.fetchone()
        cur.execute("""
            SELECT r.rolreplication OR r.rolsuper OR EXISTS (
                     SELECT 1 FROM pg_roles g WHERE g.rolname = ANY(%s)
                        AND pg_has_role(current_user, g.oid, 'member'))
            FROM pg_roles r WHERE r.rolname = current_user""", (list(_REPLICATION_ROLES),))
        row = cur.fetchone()
    if wal_level != "logical":
        raise ConfigError(f"the server runs with wal_level={wal_level}; logical decoding needs "
                          "wal_level = logical in postgresql.conf (and a server restart)")
    if not row or not row[0]:
        raise ConfigError(f"role {conn.info.user} lacks the REPLICATION attribute; an administrator "
                          f"must run: ALTER ROLE {quote_name(conn.info.user)} REPLICATION;")


def ensure_publication(conn: PgConnection, name: str, tables: list[TableInfo]) -> list[TableInfo]:
    """Reuse the publication if it exists (never alter it); create it filtered otherwise.

    Returns the tables as the publication sends them: on PostgreSQL 15+ it may list columns
    (`FOR TABLE t (a, b)`, to keep an ID number or a scanned document out of Kafka), and a
    snapshot must then read those columns only, as the stream carries them.
    """
    wanted = ", ".join(t.ref.sql_text() for t in tables)
    with conn.cursor() as cur:
        cur.execute("SELECT pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = %s",
                    (name,))
        row = cur.fetchone()
        if row is None:
            try:
                cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                    sql.Identifier(name), sql.SQL(", ").join(t.ref.ident() for t in tables)))
            except psycopg2.errors.InsufficientPrivilege as exc:
                conn.rollback()
                raise ConfigError(
                    f"publication {name} does not exist and role {conn.info.user} may not create it "
                    f"({exc.pgerror.strip() if exc.pgerror else exc}). An administrator must run: "
                    f"CREATE PUBLICATION {quote_name(name)} FOR TABLE {wanted};") from None
            log.info("created publication %s for %s", name, wanted)
            return tables
        if not all(row):
            log.warning("publication %s does not publish every operation (insert/update/delete = %s)",
                        name, row)
        columns = "attnames" if server_version(conn) >= 150000 else "NULL"
        cur.execute(f"SELECT schemaname, tablename, {columns} FROM pg_publication_tables "
                    "WHERE pubname = %s", (name,))
        published = {f"{s}.{t}": names for s, t, names in cur.fetchall()}
    missing = [t.ref for t in tables if str(t.ref) not in published]
    if missing:
        raise ConfigError(f"publication {name} exists but does not include "
                          f"{', '.join(map(str, missing))}; an administrator must run: ALTER PUBLICATION "
                          f"{quote_name(name)} ADD TABLE {', '.join(t.sql_text() for t in missing)};")
    return [_narrowed(name, t, published[str(t.ref)]) for t in tables]


def _narrowed(publication: str, info: TableInfo, names: list[str] | None) -> TableInfo:
    if names is None:  # PostgreSQL before 15: no column lists
        return info
    listed = set(names)
    kept = tuple(c for c in info.columns if c.name in listed)
    if len(kept) == len(info.columns):  # every column we read is published
        return info
    unkeyed = [k for k in info.primary_key if k not in listed]
    if unkeyed:  # PostgreSQL then refuses the application's own UPDATEs and DELETEs
        keep = ", ".join(quote_name(c.name) for c in info.columns if c.name in listed or c.name in unkeyed)
        raise ConfigError(
            f"publication {publication} lists columns of {info.ref} without its primary key "
            f"({', '.join(unkeyed)}): its change events would have no key, and PostgreSQL refuses "
            f"every UPDATE and DELETE on the table while this is so. An administrator must run: "
            f"ALTER PUBLICATION {quote_name(publication)} SET TABLE {info.ref.sql_text()} ({keep});")
    log.info("publication %s sends these columns of %s only: %s", publication, info.ref,
             ", ".join(c.name for c in kept))
    return replace(info, columns=kept)


@dataclass(frozen=True)
class SlotState:
    plugin: str | None
    database: str | None
    active_pid: int | None
    confirmed_flush: int | None
    wal_status: str | None
    # How long the walsender holding it has been silent: since its client's last reply, or
    # since it started when the client never replied. None when unknown: pg_stat_replication
    # hides the walsender's columns (state, reply_time) from a role without pg_read_all_stats,
    # even for its own walsenders.
    seconds_since_reply: float | None
    replies_hidden: bool = False  # the holder is listed, its columns are not (see above)


def slot_state(conn: PgConnection, slot: str) -> SlotState | None:
    with conn.cursor() as cur:
        cur.execute("""
            SELECT s.plugin, s.database, s.active_pid, s.confirmed_flush_lsn::text, s.wal_status,
                   CASE WHEN r.state IS NOT NULL  -- else hidden from this role
                        THEN extract(epoch FROM now() - coalesce(r.reply_time, r.backend_start)) END,
                   r.pid IS NOT NULL AND r.state IS NULL
            FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
            WHERE s.slot_name = %s""", (slot,))
        row = cur.fetchone()
    if row is None:
        return None
    plugin, database, pid, flush, wal_status, since, hidden = row
    return SlotState(plugin, database, pid, lsn_to_int(flush) if flush else None, wal_status,
                     None if since is None else float(since), bool(hidden))


def drop_slot(conn: PgConnection, slot: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(%s) FROM pg_replication_slots "
                    "WHERE slot_name = %s", (slot, slot))
    log.warning("dropped replication slot %s", slot)


def terminate(conn: PgConnection, pid: int) -> bool:
    """pg_terminate_backend; False when not permitted (another role's walsender)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            return bool(cur.fetchone()[0])
    except psycopg2.errors.InsufficientPrivilege:
        conn.rollback()
        return False


def slot_lag_bytes(conn: PgConnection, slot: str) -> int | None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                    "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def server_version(conn: PgConnection) -> int:
    return int(conn.server_version)
