"""Initial snapshot with a consistent hand-off to streaming.

The slot is created with EXPORT_SNAPSHOT: PostgreSQL returns the slot's consistent point
and the name of a snapshot that sees exactly the transactions committed before it. The
tables are read in a REPEATABLE READ transaction that imports that snapshot, and
streaming then starts at the consistent point — every committed row is either in the
snapshot (op "r") or in the stream (op "c"/"u"/"d"), never both, never neither.
The exported snapshot lives only while the replication connection stays idle, so the
caller must not use that connection until `read_tables` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ
from psycopg2.extras import ReplicationCursor

from bridge import metrics
from bridge.errors import TransportError
from connectors.delivery import Delivery
from connectors.envelope import TableSchema, envelope_bytes, pg_source
from connectors.pgcatalog import TableInfo
from connectors.pgoutput import lsn_to_int

log = logging.getLogger("onestop.capture.snapshot")
FETCH_ROWS = 2000


class SnapshotAborted(TransportError):
    """Stopped or disconnected before the snapshot finished: it will be redone from scratch."""


def create_slot(cursor: ReplicationCursor, slot: str, export: bool,
                temporary: bool = False) -> tuple[int, str | None]:
    """CREATE_REPLICATION_SLOT … pgoutput; returns (consistent point, exported snapshot name)."""
    mode = "EXPORT_SNAPSHOT" if export else "NOEXPORT_SNAPSHOT"
    kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
    cursor.execute(f'CREATE_REPLICATION_SLOT "{slot}" {kind} pgoutput {mode}')
    _name, point, snapshot, _plugin = cursor.fetchone()
    log.info("created slot %s at %s (snapshot %s)", slot, point, snapshot)
    return lsn_to_int(point), snapshot


def text_columns(info: TableInfo) -> sql.Composable:
    """The select list of a snapshot read: ::text gives the same representation pgoutput
    sends, so one codec path serves both (`row_of`)."""
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in info.columns)


def row_reader(schema: TableSchema) -> Callable[[Sequence[str | None]], dict[str, Any]]:
    """Rows read through `text_columns`, as the stream would have decoded them."""
    names = [c.name for c in schema.columns]
    converters = [c.codec.from_text for c in schema.columns]

    def read(values: Sequence[str | None]) -> dict[str, Any]:
        return {n: None if v is None else conv(v)
                for n, conv, v in zip(names, converters, values, strict=True)}
    return read


def _rows(conn: psycopg2.extensions.connection, info: TableInfo) -> Iterator[list[str | None]]:
    with conn.cursor(name=f"onestop_snapshot_{info.oid}") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(sql.SQL("SELECT {} FROM {}").format(text_columns(info), info.ref.ident()))
        yield from cur


def _flag(first: bool, last: bool, first_in_table: bool, last_in_table: bool) -> str:
    if last:
        return "last"
    if first:
        return "first"
    if last_in_table:
        return "last_in_data_collection"
    if first_in_table:
        return "first_in_data_collection"
    return "true"


def read_tables(connect: Any, snapshot_name: str, tables: list[TableInfo], consistent_lsn: int,
                prefix: str, db: str, schemas: bool, delivery: Delivery,
                stop: threading.Event) -> int:
    """Emit every row as op "r"; return once Kafka acknowledged all of them."""
    conn = connect()
    try:
        conn.autocommit = False
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
            # source.txId of the rows, as Debezium gives it: the snapshot transaction's own
            # (none on a standby, which cannot assign one).
            cur.execute("SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE txid_current() END")
            tx_id = cur.fetchone()[0]
        ts_us = time.time_ns() // 1000
        batch = delivery.open()
        pending: tuple[TableSchema, dict[str, Any], bool, bool] | None = None
        count = 0

        def emit(last: bool, next_table_differs: bool) -> None:
            schema, row, first, first_in_table = pending  # type: ignore[misc]
            flag = _flag(first, last, first_in_table, next_table_differs)
            source = pg_source(prefix, db, schema, ts_us, flag, tx_id, consistent_lsn, None)
            key = schema.key_bytes(schema.key_of(row), schemas)
            delivery.send(batch, schema.topic, key,
                          envelope_bytes(schema, None, row, source, "r", schemas),
                          (schema.full_name, "r"))

        for info in tables:
            schema = info.schema(prefix)
            read = row_reader(schema)
            first_in_table = True
            for values in _rows(conn, info):
                if stop.is_set():
                    raise SnapshotAborted("stop requested during the snapshot")
                if pending is not None:
                    emit(False, pending[0] is not schema)
                row = read(values)
                pending = (schema, row, count == 0, first_in_table)
                first_in_table = False
                count += 1
                if count % 10000 == 0:
                    log.info("snapshot: %d rows so far", count)
        if pending is not None:
            emit(True, True)
        batch.close(0)  # snapshot rows confirm no WAL position
        if not delivery.drain(300):
            raise SnapshotAborted("Kafka did not acknowledge the snapshot in time")
        delivery.acked_position()  # raises DeliveryFailed if any snapshot record was refused
        conn.commit()
        metrics.capture_snapshot_rows.inc(count)
        log.info("snapshot complete: %d rows from %d tables", count, len(tables))
        return count
    except psycopg2.OperationalError as exc:
        raise SnapshotAborted(f"connection lost during the snapshot: {exc}") from exc
    finally:
        conn.close()
