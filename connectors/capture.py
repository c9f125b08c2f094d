"""`onestop-bridge capture --mode pgoutput`: start-up checks, slot and snapshot decisions,
and the reconnect loop around streaming.

One session = connect, check, prepare the slot (snapshot if needed), stream until stopped
or disconnected. A lost connection, a restarting database, a slot still held by a stale
walsender or a Kafka failure end the session; tenacity waits a jittered, growing delay
and starts a new one. Only configuration problems (ConfigError) end the process.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from types import SimpleNamespace
from typing import Any

import psycopg2
import psycopg2.errors
from confluent_kafka import KafkaException
from psycopg2.extras import LogicalReplicationConnection
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from bridge import metrics
from bridge.errors import ConfigError, TransportError
from bridge.refusals import refusal
from bridge.settings import Settings
from connectors import pgcatalog as cat
from connectors.chunks import Chunks
from connectors.delivery import AckListener, Delivery, kafka_failure, producer_config
from connectors.incremental import IncrementalSnapshot
from connectors.offsets import ConfirmLimit, OffsetStore
from connectors.pgoutput import int_to_lsn
from connectors.snapshot import SnapshotAborted, create_slot, read_tables
from connectors.stream import Streamer, StreamOptions

log = logging.getLogger("onestop.capture")
# Text output the codecs expect, whatever the server's defaults are.
SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3"
HEALTHY_AFTER_S = 60.0  # a session that streamed this long resets the backoff
# libpq's complaint about an option it does not know (its name only, never a value).
_UNKNOWN_OPTION = re.compile(r'invalid (?:connection option|URI query parameter:) "([a-z_]+)"')


class SlotBusy(TransportError):
    """Another walsender holds the slot; wait, then take it over if it stopped answering."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ConfigError):
        return False
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError, TransportError,
                        KafkaException, TimeoutError, ConnectionError)):
        return True
    # Connection-level failures surface as bare DatabaseError without an SQLSTATE.
    return isinstance(exc, psycopg2.DatabaseError) and (
        exc.pgcode is None or exc.pgcode[:2] in ("08", "53", "57", "58"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlotBusy):
        return "slot_busy"
    if kafka_failure(exc):
        return "kafka"
    if isinstance(exc, SnapshotAborted):
        return "snapshot"
    return "connection"


class PgCapture:
    def __init__(self, settings: Settings, stop: threading.Event,
                 ack_listener: AckListener | None = None) -> None:
        src = settings.source
        if src.dsn is None:
            raise ConfigError("source.dsn is not set (ONESTOP_SOURCE__DSN)")
        self.src = src
        self.dsn = src.dsn.get_secret_value()
        try:
            parts = psycopg2.extensions.parse_dsn(self.dsn)
        except psycopg2.ProgrammingError as exc:
            # Not libpq's whole message: it may quote the text around the fault, which may be
            # a password. An unknown option's name is safe to repeat, and says what to fix.
            option = _UNKNOWN_OPTION.search(str(exc))
            raise ConfigError("source.dsn is not a PostgreSQL connection string "
                              + (f"(libpq knows no option {option.group(1)!r}; " if option else "(")
                              + "a URI such as postgresql://onestop_capture@db.example:5432/onestop, "
                              "or key=value pairs)") from None
        # libpq parses the port only when it connects: a typo would look like a server down.
        if not all(p.isdigit() and 0 < int(p) < 65536 for p in parts.get("port", "5432").split(",")):
            raise ConfigError("source.dsn: the port is not a number from 1 to 65535")
        self.stop = stop
        conf = producer_config(settings.kafka)
        self.delivery = Delivery(conf, ack_listener=ack_listener)
        self.offsets = OffsetStore(settings.kafka, conf, src.topic_prefix)
        self.limit = ConfirmLimit(self.offsets, enabled=src.snapshot_mode != "no_data")
        self._snapshotted = False
        self._switch_lsn = 0
        # What that snapshot read; None (a record from before tables were recorded): every table.
        self._switch_tables: frozenset[str] | None = None
        self._told_unseen = False  # warned once that the slot's holder cannot be judged
        self.incremental: IncrementalSnapshot | None = None  # with source.signal_table, across sessions
        self._to_read: list[str] = []  # added tables for the incremental snapshot
        self._streaming_since: float | None = None
        self._kafka_failed = False  # the last session ended by Kafka: check it first
        self._failures = 0
        self._jitter = wait_random_exponential(multiplier=0.5, max=30, min=0.2)

    def connect(self, replication: bool = False) -> Any:
        kwargs: dict[str, Any] = {
            "options": SESSION_OPTIONS, "application_name": "onestop-capture",
            # Notice a dead peer (network partition) instead of waiting forever.
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            "connect_timeout": 10,
        }
        if replication:
            kwargs["connection_factory"] = LogicalReplicationConnection
        try:
            conn = psycopg2.connect(self.dsn, **kwargs)
        except psycopg2.OperationalError as exc:
            raise refusal(exc) or exc from None
        if not replication:
            conn.autocommit = True  # never hold a transaction (and the xmin horizon) open
        return conn

    # --- the reconnect loop ----------------------------------------------------------------

    def run(self) -> None:
        retrying = Retrying(retry=retry_if_exception(_transient), wait=self._wait,
                            stop=lambda _rs: self.stop.is_set(), sleep=self._sleep,
                            before_sleep=self._before_sleep, reraise=True)
        try:
            retrying(self._session)
        except Exception:
            if not self.stop.is_set():
                raise
        finally:
            self.delivery.shutdown()

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _wait(self, _state: RetryCallState) -> float:
        if self._streaming_since and time.monotonic() - self._streaming_since > HEALTHY_AFTER_S:
            self._failures = 0
        self._streaming_since = None
        self._failures += 1
        return float(self._jitter(SimpleNamespace(attempt_number=self._failures)))  # type: ignore[arg-type]

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = _reason(exc) if exc else "connection"
        metrics.capture_reconnects.labels(reason=reason).inc()
        metrics.capture_connected.set(0)
        self._kafka_failed = reason == "kafka"
        self._measure_lag()
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("capture session ended (%s: %s); retrying in %.1fs", reason,
                    str(exc).strip().splitlines()[0] if exc and str(exc).strip() else exc, wait)
        # In-flight records settle so the next session can start behind them.
        self.delivery.recover(exc)
        self.delivery.forget_open()

    def _measure_lag(self) -> None:
        """Between sessions the slot keeps holding WAL (Kafka down, slot busy), and that is
        when the lag alerts matter: measure it on a short connection, NaN (unknown, not a
        reassuring stale value) when the database cannot be asked."""
        lag = None
        try:
            conn = self.connect()
            try:
                lag = cat.slot_lag_bytes(conn, self.src.slot)
            finally:
                conn.close()
        except (psycopg2.Error, ConfigError):
            pass
        metrics.capture_slot_lag_bytes.set(float("nan") if lag is None else lag)

    # --- one session -------------------------------------------------------------------------

    def _session(self) -> None:
        if self._kafka_failed:
            # Streaming would only wait for Kafka again, reporting itself connected; and a
            # broker back from losing its state may have no offsets topic, or a wrong one.
            self.delivery.reachable(self.stop)
            self.offsets.recheck()
            self._kafka_failed = False
        catalog = self.connect()
        repl = None
        try:
            cat.check_server(catalog)
            tables = cat.check_tables(catalog, self.src.tables)
            if self.src.heartbeat_table:
                cat.check_heartbeat_table(catalog, self.src.heartbeat_table)
            signal_table = self.src.signal_table
            signals = [cat.check_signal_table(catalog, signal_table)] if signal_table else []
            # The signal table must be published too: its rows reach the connector in the stream.
            tables = cat.ensure_publication(catalog, self.src.publication, tables + signals)[:len(tables)]
            db = catalog.info.dbname
            if self.limit.enabled:  # the offsets topic is in use (not snapshot_mode=no_data)
                self.offsets.prepare(stop=self.stop)
            repl = self.connect(replication=True)
            cursor = repl.cursor()
            start, switch = self._prepare_slot(catalog, cursor, tables, db)
            opts = StreamOptions(self.src.slot, self.src.publication, self.src.topic_prefix, db,
                                 self.src.schemas_enable, self.src.heartbeat_interval_s,
                                 self.src.heartbeat_table,
                                 tables=frozenset(str(t.ref) for t in tables),
                                 messages=cat.server_version(catalog) >= 140000,
                                 signal_table=str(signals[0].ref) if signals else None)
            chunks = self._incremental(catalog, opts) if signals else None
            streamer = Streamer(opts, cursor, catalog, self.delivery, self.stop, self.limit,
                                self.incremental if signals else None, chunks)
            try:
                self._streaming_since = time.monotonic()
                streamer.run(start, switch, self._switch_tables)
            except psycopg2.errors.ObjectInUse as exc:
                raise SlotBusy(str(exc)) from exc
            except psycopg2.errors.UndefinedObject as exc:  # slot dropped under us
                raise TransportError(f"replication slot vanished: {exc}") from exc
        finally:
            for conn in (repl, catalog):
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass

    def _incremental(self, catalog: Any, opts: StreamOptions) -> Chunks:
        """The incremental snapshot, created at the first session from the offsets record;
        later sessions resume from what Kafka acknowledged."""
        if self.incremental is None:
            self.incremental = IncrementalSnapshot(opts.tables, self.offsets.incremental, self._keep)
        else:
            self.incremental.configured = opts.tables
            self.incremental.restart()
        if self._to_read:  # kept with the tables record, in the same write
            self.incremental.enqueue(self._to_read, "added to source.tables")
            self._to_read = []
        return Chunks(catalog, opts.publication, opts.prefix, opts.db, opts.schemas,
                      self.src.incremental_chunk_size, self.src.timezone)

    def _keep(self, progress: dict[str, Any] | None) -> None:
        self.offsets.incremental = progress  # written with the next confirmation bound

    def _prepare_slot(self, catalog: Any, cursor: Any, tables: list[cat.TableInfo],
                      db: str) -> tuple[int, int]:
        """Make sure the slot exists, snapshotting if needed.

        Returns the LSN to stream from (0 = the slot's confirmed position) and the snapshot's
        switch point: transactions committed before it are already in the snapshot.
        """
        slot = self.src.slot
        state = cat.slot_state(catalog, slot)
        if state is not None and (state.plugin != "pgoutput" or state.database != db):
            raise ConfigError(f"replication slot {slot} already exists for plugin {state.plugin} in "
                              f"database {state.database}; choose another source.slot")
        if state is not None and state.wal_status == "lost":
            log.error("replication slot %s was invalidated (WAL removed, max_slot_wal_keep_size?): "
                      "recreating it and snapshotting again", slot)
            self._free(catalog, state)
            cat.drop_slot(catalog, slot)
            state = None
        if self._needs_snapshot(state):
            if state is None:  # a new slot exports its own snapshot: streaming starts where it ends
                self.delivery.reset_position()
                point, snapshot = create_slot(cursor, slot, export=True)
                self._snapshot(str(snapshot), point, tables, tables, db)
                return point, point
            self._free(catalog, state)
            return self.delivery.acked_position(), self._snapshot_beside(tables, tables, db)
        if state is None:
            self.delivery.reset_position()
            point, _ = create_slot(cursor, slot, export=False)
            return point, 0
        self._free(catalog, state)
        added = self._added(tables, state)
        if added and self.src.signal_table:
            # Incremental snapshots are on: the added tables are read while everything streams.
            log.info("%s not snapshotted yet (added to source.tables): reading them by an "
                     "incremental snapshot, streaming on", ", ".join(sorted(added)))
            assert self.offsets.record is not None, "_added() found a record"
            self.offsets.record["tables"] = sorted(str(t.ref) for t in tables)
            self._to_read = sorted(added)
            return self.delivery.acked_position(), self._switch_lsn
        if added:
            log.info("%s not snapshotted yet (added to source.tables): snapshotting; the other "
                     "tables' changes are streamed after it", ", ".join(sorted(added)))
            read = [t for t in tables if str(t.ref) in added]
            return self.delivery.acked_position(), self._snapshot_beside(read, tables, db)
        return self.delivery.acked_position(), self._switch_lsn  # 0 = slot's confirmed_flush_lsn

    def _snapshot_beside(self, read: list[cat.TableInfo], tables: list[cat.TableInfo], db: str) -> int:
        """Keep the slot (it holds every change since it was last confirmed); a temporary slot
        exports the snapshot at a point S and the stream catches up to it (connectors/handoff.py).
        Returns S."""
        temp = self.connect(replication=True)
        try:
            point, snapshot = create_slot(temp.cursor(), f"{self.src.slot}_snap_{os.getpid()}",
                                          export=True, temporary=True)
            self._snapshot(str(snapshot), point, read, tables, db)
        finally:
            temp.close()
        return point

    def _added(self, tables: list[cat.TableInfo], state: cat.SlotState) -> frozenset[str]:
        """The configured tables no completed snapshot has read. With them, those of an earlier
        snapshot whose catch-up the stream has not finished: one catch-up covers both.

        A table no longer configured leaves the record: its changes are not published from
        now on, so if it comes back it is read again. The record reaches Kafka with the next
        confirmation bound, before the slot can pass any of those changes."""
        record = self.offsets.record
        if self.src.snapshot_mode == "no_data" or record is None:
            return frozenset()
        names = frozenset(str(t.ref) for t in tables)
        recorded = set(record.get("tables", names))  # none recorded by older versions: those of now
        record["tables"] = sorted(recorded & names)
        added = names - recorded
        if added and (state.confirmed_flush or 0) < self._switch_lsn:
            added |= names if self._switch_tables is None else self._switch_tables & names
        return added

    def _snapshot(self, name: str, point: int, read: list[cat.TableInfo], tables: list[cat.TableInfo],
                  db: str) -> None:
        """Read the tables `read` at `point`, then record every configured table as
        snapshotted, and `read` as the tables the catch-up to `point` covers."""
        read_tables(self.connect, name, read, point, self.src.topic_prefix, db,
                    self.src.schemas_enable, self.delivery, self.stop)
        if len(read) == len(tables):  # every table read anew: no incremental snapshot left to do
            self.offsets.incremental = None
            self.incremental = None
        # The slot is at or before the snapshot's point: that is its first confirmation bound.
        self.offsets.save({"slot": self.src.slot, "snapshot_completed": True, "switch_lsn": point,
                           "switch_lsn_text": int_to_lsn(point), "ts_usec": time.time_ns() // 1000,
                           "confirm_limit": point, "confirm_limit_text": int_to_lsn(point),
                           "tables": sorted(str(t.ref) for t in tables),
                           "switch_tables": sorted(str(t.ref) for t in read)})
        self.limit.loaded(self.offsets.record)
        self._snapshotted, self._switch_lsn = True, point
        self._switch_tables = frozenset(str(t.ref) for t in read)

    def _needs_snapshot(self, state: cat.SlotState | None) -> bool:
        mode = self.src.snapshot_mode
        if mode == "no_data":
            return False
        if self._snapshotted and state is not None and not self.limit.passed_by(state.confirmed_flush):
            return False
        if mode == "always" and not self._snapshotted:
            return True
        # At the first start, or when the slot seems past our bound: the record in Kafka has the
        # latest bound, which another instance of this connector moves with the slot while this
        # one waits for it.
        record = self.offsets.load(stop=self.stop)
        done = bool(record and record.get("snapshot_completed") and record.get("slot") == self.src.slot)
        completed = record if done and record else {}
        self._snapshotted = done
        self._switch_lsn = int(completed.get("switch_lsn", 0))
        switch_tables = completed.get("switch_tables")
        self._switch_tables = None if switch_tables is None else frozenset(switch_tables)
        if not done:
            if state is not None:
                log.warning("slot %s exists but no completed snapshot is recorded in %s: "
                            "redoing the snapshot", self.src.slot, self.offsets.topic)
            return True
        self.limit.loaded(record)
        if state is None:
            log.error("snapshot was completed earlier but slot %s is gone (dropped, or lost in a "
                      "failover): changes made meanwhile cannot be streamed; snapshotting again",
                      self.src.slot)
            return True
        return self._slot_moved(state)

    def _slot_moved(self, state: cat.SlotState) -> bool:
        """The slot is past every bound this connector let it be confirmed to
        (offsets.ConfirmLimit): someone else created or advanced it, and what it skipped
        is missing from Kafka. A new snapshot publishes the current rows."""
        if not self.limit.passed_by(state.confirmed_flush):
            return False
        log.error("replication slot %s is at %s, past %s, the furthest this connector let it be "
                  "confirmed: it was re-created (by hand, or at a failover) or advanced by someone "
                  "else, and changes it skipped cannot be streamed; snapshotting again",
                  self.src.slot, int_to_lsn(state.confirmed_flush or 0), int_to_lsn(self.limit.acked))
        self._snapshotted = False
        return True

    def _free(self, catalog: Any, state: cat.SlotState) -> None:
        """A walsender still holds the slot: wait for it, terminate it once it is stale."""
        if state.active_pid is None:
            self._told_unseen = False
            return
        pid, grace, silent = state.active_pid, self.src.slot_takeover_after_s, state.seconds_since_reply
        if silent is None:
            # It may be a live connector (a second instance): never guess. The server itself
            # ends a walsender whose client stops replying, after wal_sender_timeout.
            if state.replies_hidden and not self._told_unseen:
                self._told_unseen = True
                log.warning("slot %s is held by PID %s, and this role cannot see whether it "
                            "answers (pg_stat_replication needs pg_read_all_stats): waiting for "
                            "it to end. If no other connector runs, an administrator can run: "
                            "SELECT pg_terminate_backend(%s); or GRANT pg_read_all_stats to "
                            "this role so capture can take over a stale slot itself",
                            self.src.slot, pid, pid)
            raise SlotBusy(f"replication slot {self.src.slot} is active for PID {pid} "
                           "(whether it answers is not known); waiting")
        if silent >= grace:
            if cat.terminate(catalog, pid):
                log.warning("terminated walsender PID %s that held slot %s without answering for "
                            "%.0fs", pid, self.src.slot, silent)
                self._wait_released(catalog)
                return
            log.error("slot %s is held by PID %s and this role may not terminate it; an "
                      "administrator can run: SELECT pg_terminate_backend(%s);",
                      self.src.slot, pid, pid)
        raise SlotBusy(f"replication slot {self.src.slot} is active for PID {pid} "
                       f"(last reply {silent:.0f}s ago); waiting (takeover after {grace:.0f}s)")

    def _wait_released(self, catalog: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = cat.slot_state(catalog, self.src.slot)
            if state is None or state.active_pid is None:
                return
            time.sleep(0.1)
        raise SlotBusy(f"slot {self.src.slot} still active after terminating its walsender")
