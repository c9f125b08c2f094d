"""`onestop-bridge capture --mode polling`: any SQLAlchemy database, polled by (updated_at, id).

Each poll re-reads from ``cursor - poll_overlap_s`` so that rows committed late with an
older ``updated_at`` (a long transaction that stamped the row before a shorter one
committed) are still seen; rows whose (id, updated_at) was already emitted are skipped.
Records use the same envelope as the log-based connector with ``source.connector =
"polling"``; the first pass over a table is a snapshot (op "r"). Limits — deletes and
intermediate states between two polls are invisible — are in docs/connectors.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from confluent_kafka import KafkaException
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception, wait_random_exponential

from bridge import metrics
from bridge.dburl import create_engine
from bridge.errors import ConfigError, TransportError
from bridge.refusals import refusal
from bridge.settings import Settings
from connectors.delivery import Delivery, KafkaUnavailable, kafka_failure, producer_config
from connectors.envelope import CONNECTOR_VERSION, Column, TableSchema, envelope_bytes
from connectors.pgcatalog import TableRef
from connectors.polling_state import PollState
from connectors.types import sqlalchemy_codec

log = logging.getLogger("onestop.capture.polling")
PAGE_ROWS = 1000
REFLECT_EVERY_S = 60.0


@dataclass
class PolledTable:
    name: str  # as configured: "public.dossiers" (also names the topic)
    table: sa.Table
    schema: TableSchema
    updated: sa.Column[Any]
    # updated_at (as the database orders it), then the row's identity: a total order. Pages
    # resume after the last row's values of these, read back under their labels.
    order: list[sa.Column[Any] | sa.Label[Any]]
    # What tells rows apart: the key, or source.poll_row_id where one key has many rows
    # (a history view keyed by dossier id). The dedupe memory goes by it.
    identity: list[str]


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ConfigError):
        return False
    if isinstance(exc, sa.exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, sa.exc.OperationalError)
    return isinstance(exc, (TransportError, KafkaException, ConnectionError, TimeoutError))


class PollingCapture:
    def __init__(self, settings: Settings, stop: threading.Event, ack_listener: Any = None) -> None:
        src = settings.source
        if src.dsn is None:
            raise ConfigError("source.dsn is not set (ONESTOP_SOURCE__DSN): a SQLAlchemy URL")
        self.src, self.stop = src, stop
        self.engine: Engine = create_engine("source.dsn", src.dsn.get_secret_value(), pool_pre_ping=True)
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:" \
                and not database.startswith("file:") and not Path(database).is_file():
            # SQLite would create an empty file there, and the error would name a table.
            raise ConfigError(f"source.dsn: the SQLite file {database} does not exist")
        self.delivery = Delivery(producer_config(settings.kafka), ack_listener=ack_listener)
        self.state = PollState(src.state_path)
        self.zone = ZoneInfo(src.timezone)
        self.overlap = timedelta(seconds=src.poll_overlap_s)
        self.db = self.engine.url.database or ""
        self._tables: list[PolledTable] | None = None
        self._reflected_at = 0.0
        self._always_done: set[str] = set()
        if src.signal_table:  # signals travel in the WAL stream, which polling does not read
            log.warning("source.signal_table is ignored in polling mode: incremental snapshots need "
                        "--mode pgoutput; polling re-reads a table when its state file is removed")

    def run(self) -> None:
        retrying = Retrying(retry=retry_if_exception(_transient),
                            wait=wait_random_exponential(multiplier=0.5, max=30, min=0.2),
                            stop=lambda _rs: self.stop.is_set(), sleep=self._sleep,
                            before_sleep=self._before_sleep, reraise=True)
        try:
            retrying(self._loop)
        except Exception:
            if not self.stop.is_set():
                raise
        finally:
            self.delivery.drain(30)
            self.delivery.shutdown()
            self.state.close()

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _before_sleep(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = "kafka" if kafka_failure(exc) else "connection"
        metrics.capture_reconnects.labels(reason=reason).inc()
        metrics.capture_connected.set(0)
        log.warning("polling failed (%s: %s); retrying", reason,
                    str(exc).splitlines()[0] if exc else "?")
        self.delivery.recover(exc)  # a refused record would otherwise fail every later pass

    def _loop(self) -> None:
        while not self.stop.is_set():
            for table in self.tables():
                self.poll_table(table)
                if self.stop.is_set():
                    return
            # "Connected" here: a whole pass read the database and Kafka took what it found.
            metrics.capture_connected.set(1)
            self.stop.wait(self.src.poll_interval_s)

    def tables(self) -> list[PolledTable]:
        # Re-read the table definitions now and then: an added column then appears in `after`.
        if self._tables is None or time.monotonic() - self._reflected_at > REFLECT_EVERY_S:
            with self._connect() as conn:
                self._tables = [self._reflect(conn, name) for name in self.src.tables]
            self._reflected_at = time.monotonic()
        return self._tables

    def _reflect(self, conn: sa.Connection, name: str) -> PolledTable:
        ref = TableRef.parse(name)
        schema_name: str | None = ref.schema
        if self.engine.dialect.name != "postgresql" and ref.schema in ("public", "main"):
            schema_name = None  # the database's default schema
        try:
            table = sa.Table(ref.name, sa.MetaData(), schema=schema_name, autoload_with=conn)
        except sa.exc.NoSuchTableError:
            raise ConfigError(f"table {name} (source.tables) does not exist") from None
        cols = self.src.columns
        if cols.updated_at not in table.c:
            raise ConfigError(f"table {name} has no column {cols.updated_at!r} "
                              "(source.columns.updated_at); polling needs one")
        # str(): SQLAlchemy's quoted_name is a str subclass, which orjson refuses as a key.
        key = [str(c.name) for c in table.primary_key.columns] or [cols.id]
        if any(k not in table.c for k in key):
            raise ConfigError(f"table {name} has no primary key and no column {cols.id!r}")
        identity = [self.src.poll_row_id] if self.src.poll_row_id else key
        if identity[0] not in table.c:
            raise ConfigError(f"table {name} has no column {identity[0]!r} (source.poll_row_id)")
        columns = tuple(Column(str(c.name), sqlalchemy_codec(c.type), bool(c.nullable))
                        for c in table.columns)
        schema = TableSchema(self.src.topic_prefix, ref.schema, ref.name, columns, tuple(key),
                             source_struct="io.onestop.connector.polling.Source")
        updated = table.c[cols.updated_at]
        self._report_unordered(conn, name, table, updated)
        return PolledTable(name, table, schema, updated,
                           [self._as_ordered(updated), *(table.c[k] for k in identity)], identity)

    def _report_unordered(self, conn: sa.Connection, name: str, table: sa.Table,
                          updated: sa.Column[Any]) -> None:
        missing = conn.execute(sa.select(sa.func.count()).select_from(table)
                               .where(updated.is_(None))).scalar_one()
        conn.rollback()  # end the read transaction, as after every page
        if missing:
            log.warning("%d rows of %s have no %s and are not captured until the application "
                        "sets it (NOT NULL DEFAULT CURRENT_TIMESTAMP prevents this)",
                        missing, name, updated.name)

    def _as_ordered(self, updated: sa.Column[Any]) -> sa.Column[Any] | sa.Label[Any]:
        """SQLite keeps timestamps as text and orders and compares them as text, but
        SQLAlchemy binds a datetime as '… 01:00:00.000000', which sorts after the
        '… 01:00:00' CURRENT_TIMESTAMP writes: a page ending inside rows of one second
        skipped the rest of them. There, pages resume after the stored text itself."""
        if self.engine.dialect.name != "sqlite":
            return updated
        return sa.type_coerce(updated, sa.String).label("onestop_position")

    # --- one pass over one table -------------------------------------------------------------

    def poll_table(self, pt: PolledTable) -> int:
        mode = self.src.snapshot_mode
        if mode == "always" and pt.name not in self._always_done:
            self.state.restart_snapshot(pt.name)
            self._always_done.add(pt.name)
        cursor_text, snapshot_done = self.state.cursor(pt.name)
        first_pass = not snapshot_done
        silent = first_pass and mode == "no_data"  # learn what exists, emit nothing
        lower = None if cursor_text is None else _parse_ts(cursor_text) - self.overlap
        position: tuple[Any, ...] | None = None
        emitted = 0
        with self._connect() as conn:
            while not self.stop.is_set():
                rows = self._page(conn, pt, lower, position)
                more = len(rows) > PAGE_ROWS
                rows = rows[:PAGE_ROWS]
                if not rows:
                    break
                emitted += self._emit_page(pt, rows, first_pass, silent, emitted, more)
                position = tuple(rows[-1][c.name] for c in pt.order)
                if not more:
                    break
            else:
                return emitted
        if first_pass:
            self.state.commit(pt.name, {}, self.state.cursor(pt.name)[0], snapshot_done=True)
            log.info("first pass over %s done: %d rows", pt.name, emitted)
        return emitted

    def _connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise refusal(exc) or exc from None

    def _page(self, conn: Any, pt: PolledTable, lower: Any, position: tuple[Any, ...] | None) -> list[Any]:
        extra = [c for c in pt.order if isinstance(c, sa.Label)]
        # A row without updated_at has no place in the order: _reflect reports how many.
        query = (sa.select(pt.table, *extra).where(pt.updated.is_not(None))
                 .order_by(*pt.order).limit(PAGE_ROWS + 1))
        if lower is not None:
            query = query.where(pt.updated >= lower)
        if position is not None:
            query = query.where(_after(pt.order, position))
        try:
            result = conn.execute(query).mappings().all()
        except (ValueError, TypeError) as exc:  # the driver or SQLAlchemy could not read a value
            conn.rollback()
            raise ConfigError(
                f"table {pt.name}: a row holds a value its column's type cannot read ({exc}); "
                "polling stops rather than skip it: correct the row and start again") from None
        conn.rollback()  # end the read transaction: never hold snapshots between polls
        return list(result)

    def _emit_page(self, pt: PolledTable, rows: list[Any], first_pass: bool, silent: bool,
                   emitted_before: int, more: bool) -> int:
        schema = pt.schema
        keys = [_row_text(pt.identity, r) for r in rows]
        known = self.state.versions(pt.name, keys)
        batch = self.delivery.open()
        seen: dict[str, str] = {}
        count = 0
        for index, (row, row_text) in enumerate(zip(rows, keys, strict=True)):
            # The content too: a second change within the same second (SQLite's
            # CURRENT_TIMESTAMP, MySQL DATETIME) keeps the stamp the first one had.
            stamp = _version(row[pt.updated.name])
            version = f"{stamp}#{_digest(row)}"
            if known.get(row_text) in (version, stamp):  # a stamp alone: an older state file
                continue  # this very version was emitted before (overlap window)
            seen[row_text] = version
            if silent:
                continue
            op = "r" if first_pass else ("u" if row_text in known else "c")
            flag = "false"
            if first_pass:
                last = not more and index == len(rows) - 1
                flag = "last" if last else "first" if emitted_before + count == 0 else "true"
            after = {c.name: _encode(c, row[c.name]) for c in schema.columns}
            source = self._source(schema, row[pt.updated.name], flag)
            self.delivery.send(batch, schema.topic, schema.key_bytes(schema.key_of(after), self.src.schemas_enable),
                               envelope_bytes(schema, None, after, source, op, self.src.schemas_enable),
                               (schema.full_name, op))
            count += 1
        batch.close(0)
        if not self.delivery.drain(120):
            raise KafkaUnavailable("Kafka did not acknowledge a polled page in time")
        self.delivery.acked_position()  # raises DeliveryFailed if a record was refused
        if count and first_pass:
            metrics.capture_snapshot_rows.inc(count)
        stamps = [_version_dt(r[pt.updated.name]) for r in rows]
        cursor_text, _ = self.state.cursor(pt.name)
        if cursor_text is not None:
            stamps.append(_parse_ts(cursor_text))
        # A text column (SQLite) may mix naive and offset-carrying values: compare instants.
        newest = max(stamps, key=self._instant)
        self.state.commit(pt.name, seen, newest.isoformat(), snapshot_done=False)
        return count

    def _source(self, schema: TableSchema, updated: Any, flag: str) -> dict[str, Any]:
        ts_us = self._epoch_us(updated)
        return {"version": CONNECTOR_VERSION, "connector": "polling", "name": self.src.topic_prefix,
                "ts_ms": ts_us // 1000, "ts_us": ts_us, "ts_ns": ts_us * 1000, "snapshot": flag,
                "db": self.db, "sequence": None, "schema": schema.schema, "table": schema.table}

    def _epoch_us(self, value: Any) -> int:
        return int(self._instant(_version_dt(value)).timestamp() * 1_000_000)

    def _instant(self, moment: datetime) -> datetime:
        # A naive value holds the database's local wall clock.
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.zone)


def _after(columns: Sequence[sa.ColumnElement[Any]], values: tuple[Any, ...]) -> Any:
    """(a, b) > (x, y) spelled out: SQL Server and Oracle have no row-value comparison."""
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(sa.and_(*equal, column > values[i]))
    return sa.or_(*clauses)


def _encode(column: Column, value: Any) -> Any:
    return None if value is None else column.codec.from_python(value)


def _row_text(identity: list[str], row: Any) -> str:
    return json.dumps([row[k] for k in identity], default=str, separators=(",", ":"))


def _version_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ConfigError(f"updated_at values must be timestamps, got {type(value).__name__}")


def _version(value: Any) -> str:
    return _version_dt(value).isoformat()


def _digest(row: Any) -> str:
    """The row's values as read (their repr: no encoding for the rows re-read unchanged in
    every poll's overlap window, the most of them)."""
    return hashlib.sha256(repr(tuple(row.values())).encode()).hexdigest()[:16]


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)

