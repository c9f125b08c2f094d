"""Streaming: pgoutput messages off the slot → Debezium records into Kafka, and the slot's
confirmed position moved forward only behind Kafka's acknowledgements.

Confirmation rule (what makes `kill -9` safe): the position sent as flush_lsn is the end
LSN of the last transaction whose records — and every earlier transaction's — Kafka has
acknowledged. When nothing is in flight and no transaction is open, the server's latest
WAL position (from keepalives, which we solicit once a second) is confirmed too, so the
slot advances while captured tables are quiet and the rest of the database is busy.
"""

from __future__ import annotations

import base64
import logging
import select
import threading
import time
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extras import ReplicationCursor

from bridge import metrics
from connectors import pgoutput as po
from connectors.chunks import Chunks
from connectors.delivery import Batch, Delivery, Headers
from connectors.envelope import (
    CONNECTOR_VERSION,
    Column,
    TableSchema,
    TransactionEvents,
    dumps,
    envelope_bytes,
    heartbeat_record,
    message_record,
    pg_source,
)
from connectors.handoff import CatchUp
from connectors.incremental import WATERMARK_PREFIX, IncrementalSnapshot
from connectors.offsets import ConfirmLimit
from connectors.pgcatalog import TableRef, column_codecs, describe_oid, slot_lag_bytes
from connectors.rowjson import NEW_TUPLE, row_encoder
from connectors.wire import DRAINED, REPLY, StreamReader

log = logging.getLogger("onestop.capture.stream")
FEEDBACK_INTERVAL_S = 1.0
LAG_INTERVAL_S = 5.0
BURST = 512
# Caught up with records in flight: how long to wait for Kafka's answers before reading again.
ACK_WAIT_S = 0.005
NEW_KEY_HEADER = "__debezium.newkey"  # on the delete of a primary-key change
OLD_KEY_HEADER = "__debezium.oldkey"  # on the create


@dataclass
class StreamOptions:
    slot: str
    publication: str
    prefix: str
    db: str
    schemas: bool
    heartbeat_interval_s: float
    heartbeat_table: str | None
    tables: frozenset[str] = frozenset()  # "schema.table" published to Kafka; empty = all
    messages: bool = True
    signal_table: str | None = None  # "schema.table" of incremental-snapshot signals


class _Rel:
    """A relation as last described by the server, with what its changes need per row."""

    __slots__ = ("schema", "read", "encode", "published", "signal", "fast")

    def __init__(self, schema: TableSchema, published: bool = True, schemas: bool = False,
                 signal: bool = False) -> None:
        self.schema = schema
        self.published = published
        self.signal = signal
        # Text columns need no conversion: None leaves the call out of the reader.
        self.read = po.row_reader([(c.name, c.codec.text_converter(), c.codec.unavailable())
                                   for c in schema.columns])
        self.encode = row_encoder(schema, schemas)
        # The native path, unless each change's key must be seen (an incremental snapshot).
        self.fast = self.encode is not None


class Streamer:
    def __init__(self, opts: StreamOptions, cursor: ReplicationCursor, catalog: PgConnection,
                 delivery: Delivery, stop: threading.Event, limit: ConfirmLimit,
                 incremental: IncrementalSnapshot | None = None, chunks: Chunks | None = None) -> None:
        self.opts, self.cur, self.catalog, self.delivery, self.stop = opts, cursor, catalog, delivery, stop
        self.limit = limit
        self.reader = StreamReader(cursor)
        self.rels: dict[int, _Rel] = {}
        self.batch: Batch | None = None
        self.begin: po.Begin | None = None
        self.confirmed = 0
        self._events: dict[_Rel, TransactionEvents] = {}  # per relation, for the open transaction
        self._last_feedback = 0.0
        self._last_heartbeat = time.monotonic()
        self._last_lag = 0.0
        self._last_track = 0.0
        self._bad: list[str] = []
        self.catchup: CatchUp | None = None
        self._window: Batch | None = None  # holds confirmation back until catch-up deletes are out
        self.incremental, self.chunks = incremental, chunks
        delivery.on_wait = self._keep_alive

    def run(self, start_lsn: int, switch_lsn: int = 0, switch_tables: frozenset[str] | None = None) -> None:
        """Stream until stopped; transactions committed before `switch_lsn` are caught up
        (for `switch_tables` only, when given: handoff.py)."""
        if switch_lsn:
            self.catchup = CatchUp(switch_lsn, switch_tables)
        options = {"proto_version": "1", "publication_names": self.opts.publication}
        if self.opts.messages:
            options["messages"] = "true"
        self.cur.start_replication(slot_name=self.opts.slot, decode=False, start_lsn=start_lsn,
                                   options=options, status_interval=FEEDBACK_INTERVAL_S)
        self.confirmed = start_lsn
        metrics.capture_connected.set(1)
        # The server resumes at the later of start_lsn and the slot's confirmed_flush_lsn.
        log.info("streaming from slot %s at %s", self.opts.slot,
                 f"{po.int_to_lsn(start_lsn)} or its confirmed position, whichever is later"
                 if start_lsn else "its confirmed position")
        burst, handle = self.reader.burst, self.handle
        while not self.stop.is_set():
            # Up to BURST messages between housekeeping (and stop checks) while they flow.
            status = burst(handle, BURST)
            self.housekeeping(answer=status == REPLY)
            if status != DRAINED:
                continue
            waiting = self.delivery.waiting()
            if self.reader.caught_up and waiting:
                self.delivery.send_now(ACK_WAIT_S)  # nothing more to batch with: no lingering
            else:  # records in flight: their answers are polled at the next housekeeping
                select.select([self.cur], [], [], 0.01 if waiting else 0.2)
        self.shutdown()

    # --- messages ------------------------------------------------------------------------

    def handle(self, payload: bytes, lsn: int) -> None:
        if payload[0] in po.ROW_TAGS:
            # The relation id by hand: compiled, indexing is C; Struct.unpack_from is a call.
            rel = self.rels[(payload[1] << 24) | (payload[2] << 16) | (payload[3] << 8) | payload[4]]
            if not rel.published:  # e.g. the heartbeat table, or a wider publication than source.tables
                if rel.signal:
                    self._signal(rel, payload, lsn)
                return
            batch = self.batch
            if payload[5] == NEW_TUPLE and rel.fast and rel.encode is not None and batch is not None \
                    and self.catchup is None:
                # Inserts, most updates: no dict in between (`rowjson`).
                if self.delivery.send_row(batch, rel.schema, rel.encode, payload,
                                          self._transaction(rel).frame, lsn,
                                          "c" if payload[0] == 73 else "u"):
                    return
            change = po.decode_change(payload, rel.read, self._bad)
            if self._bad:
                log.warning("could not encode %s columns %s; sent as text", rel.schema.full_name,
                            sorted(set(self._bad)))
                self._bad.clear()
            if change.old is None and self.catchup is None:  # inserts, most updates
                self._emit(rel, change.op, None, change.new, lsn)
            else:
                self._change(rel, change, lsn)
            return
        m = po.decode(payload)
        catchup = self.catchup
        if isinstance(m, po.Begin):
            self.begin = m
            self._events.clear()
            if catchup is not None:
                if catchup.covers(m.final_lsn):
                    # Its changes of the snapshot's tables are skipped; the rest is not in any
                    # snapshot (other tables, logical decoding messages) and is published.
                    catchup.active = True
                    self._window = self._window or self.delivery.open()
                else:
                    self._finish_catchup()
            self.batch = self.delivery.open(m.commit_ts_us / 1e6)
        elif isinstance(m, po.Commit):
            if catchup is not None and catchup.active:
                catchup.active, catchup.end_lsn = False, m.end_lsn
            if self.batch is not None:
                self.batch.close(m.end_lsn)
            if self.incremental is not None and self.begin is not None:
                self.incremental.committed(self.begin.xid)
            self.batch, self.begin = None, None
        elif isinstance(m, po.Relation):
            self._relation(m)
        elif isinstance(m, po.Message):
            self._message(m)
        elif isinstance(m, po.Truncate):
            names = [self.rels[r].schema.full_name for r in m.relids if r in self.rels]
            log.warning("TRUNCATE of %s not published (Debezium skips truncates by default)", names)

    def _change(self, rel: _Rel, change: po.Change, lsn: int) -> None:
        before = change.old
        if before is not None and change.old_is_key_only:
            before = self._key_only(rel.schema, before)
        if self.catchup is not None and self.catchup.skips(rel.schema.full_name):
            self.catchup.record(rel.schema, change.op, before, change.new)
            return
        if change.op == "u" and before is not None and rel.schema.key_columns:
            key = rel.schema.key_of
            old_key, new_key = key(before), key(change.new)  # type: ignore[arg-type]
            if old_key != new_key:
                # Primary-key change: Debezium's delete (+ tombstone) of the old key and create
                # of the new, each naming the other key's payload, as JSON, in a header (§1.4).
                self._emit(rel, "d", before, None, lsn, [(NEW_KEY_HEADER, dumps(new_key))])
                self._emit(rel, "c", None, change.new, lsn, [(OLD_KEY_HEADER, dumps(old_key))])
                return
        self._emit(rel, change.op, before, change.new, lsn)

    def _key_only(self, schema: TableSchema, old: dict[str, Any]) -> dict[str, Any]:
        """REPLICA IDENTITY DEFAULT: of the old row only the key is known. With schemas on,
        the other columns are written as Debezium does, null or (NOT NULL) their type's zero,
        since JsonConverter refuses a struct without its required fields."""
        keys = schema.key_columns
        if not self.opts.schemas:
            return {k: old[k] for k in keys}
        return {c.name: old[c.name] if c.name in keys else None if c.optional else c.codec.zero()
                for c in schema.columns}

    def _emit(self, rel: _Rel, op: str, before: dict[str, Any] | None,
              after: dict[str, Any] | None, lsn: int, headers: Headers | None = None) -> None:
        schema = rel.schema
        key = schema.key_for(after if after is not None else before or {}, self.opts.schemas)
        if not rel.fast and self.incremental is not None and self.incremental.table == schema.full_name:
            self.incremental.seen(key)
        self.delivery.send(self.batch, schema.topic, key,
                           self._transaction(rel).event(before, after, op, lsn), (schema.full_name, op),
                           headers)
        if op == "d" and key is not None:  # tombstone for compaction
            self.delivery.send(self.batch, schema.topic, key, None, None, headers)

    def _transaction(self, rel: _Rel) -> TransactionEvents:
        events = self._events.get(rel)
        if events is None:  # the table's first change in this transaction
            begin = self.begin
            events = TransactionEvents(self.opts.prefix, self.opts.db, rel.schema,
                                       begin.commit_ts_us if begin else time.time_ns() // 1000,
                                       begin.xid if begin else None,
                                       begin.final_lsn if begin else None, self.opts.schemas)
            if begin is not None:
                self._events[rel] = events
        return events

    def _relation(self, m: po.Relation) -> None:
        info = describe_oid(self.catalog, m.relid)
        not_null = {c.name for c in info.columns if c.not_null} if info else set()
        names = [c.name for c in m.columns]
        if info is not None:
            key = tuple(k for k in info.primary_key if k in names)
        else:  # dropped since: fall back to the replica-identity columns the server flagged
            key = tuple(c.name for c in m.columns if c.key) if m.replica_identity == "d" else ()
        codecs = column_codecs(self.catalog, [(c.type_oid, c.typmod) for c in m.columns])
        columns = tuple(Column(c.name, codec, c.name not in not_null)
                        for c, codec in zip(m.columns, codecs, strict=True))
        schema = TableSchema(self.opts.prefix, m.namespace, m.name, columns, key)
        old = self.rels.get(m.relid)
        if old is not None and [c.name for c in old.schema.columns] != names:
            log.info("table %s changed shape: columns now %s", schema.full_name, names)
        tables = self.opts.tables
        self.rels[m.relid] = _Rel(schema, not tables or schema.full_name in tables, self.opts.schemas,
                                  schema.full_name == self.opts.signal_table)
        if self.chunks is not None:
            self.chunks.forget(schema.full_name)  # read its columns as they are now
        self._watch()

    def _message(self, m: po.Message) -> None:
        if m.prefix == WATERMARK_PREFIX:
            self._watermark(m)
            return
        begin = self.begin if m.transactional else None
        ts_us = begin.commit_ts_us if begin else time.time_ns() // 1000
        source = {"version": CONNECTOR_VERSION, "connector": "postgresql",
                  "name": self.opts.prefix, "ts_ms": ts_us // 1000, "ts_us": ts_us,
                  "ts_ns": ts_us * 1000, "snapshot": "false", "db": self.opts.db, "sequence": None,
                  "schema": "", "table": "", "txId": begin.xid if begin else None, "lsn": m.lsn,
                  "xmin": None}
        now_ns = time.time_ns()
        value = {"source": source, "op": "m", "ts_ms": now_ns // 1_000_000, "ts_us": now_ns // 1000,
                 "ts_ns": now_ns,
                 "message": {"prefix": m.prefix, "content": base64.b64encode(m.content).decode()}}
        batch = self.batch
        if batch is None:  # non-transactional: its own unit of confirmation
            batch = self.delivery.open()
        topic, key, payload = message_record(self.opts.prefix, value, self.opts.schemas)
        self.delivery.send(batch, topic, key, payload, ("", "m"))
        if not m.transactional:
            batch.close(m.lsn)

    # --- incremental snapshots (connectors/incremental.py) -----------------------------------

    def _signal(self, rel: _Rel, payload: bytes, lsn: int) -> None:
        change = po.decode_change(payload, rel.read, self._bad)
        if self.incremental is not None and change.op == "c" and change.new is not None:
            self.incremental.signal(change.new, lsn)
            self._watch()

    def _watermark(self, m: po.Message) -> None:
        """A chunk's high watermark: publish what the stream did not overtake."""
        if self.incremental is None:
            return
        chunk = self.incremental.watermark(m.content.decode("utf-8", "replace"))
        if chunk is None:
            return  # an earlier session's
        batch = self.batch or self.delivery.open()
        for key, value in chunk.rows.items():
            self.delivery.send(batch, chunk.topic, key, value, (chunk.table, "r"))
        self.incremental.published(batch)
        if batch is not self.batch:
            batch.close(m.lsn)
        self._watch()

    def _watch(self) -> None:
        """The table an incremental snapshot reads takes the decoding path, where `_emit`
        shows each change's key to it."""
        table = self.incremental.table if self.incremental is not None else None
        for rel in self.rels.values():
            rel.fast = rel.encode is not None and rel.schema.full_name != table

    def _next_chunk(self) -> None:
        if self.incremental is not None and self.chunks is not None and self.catchup is None \
                and self.incremental.wants_chunk():
            self.incremental.take_chunk(self.chunks)
            self._watch()

    def _finish_catchup(self) -> None:
        """Past the snapshot's point: publish the deletes it could not show, then stream."""
        catchup, self.catchup = self.catchup, None
        if catchup is None:
            return
        window, self._window = self._window, None
        log.info("caught up to the snapshot's point %s (%s): %d deletes it could not show "
                 "published; streaming every table", po.int_to_lsn(catchup.switch_lsn),
                 ", ".join(sorted(catchup.tables)) if catchup.tables else "every table",
                 len(catchup.deletes))
        for schema, before in catchup.deletes.values():
            source = pg_source(self.opts.prefix, self.opts.db, schema, time.time_ns() // 1000, "false",
                               None, catchup.end_lsn, None)
            key = schema.key_bytes(schema.key_of(before), self.opts.schemas)
            value = envelope_bytes(schema, before, None, source, "d", self.opts.schemas)
            self.delivery.send(window, schema.topic, key, value, (schema.full_name, "d"))
            self.delivery.send(window, schema.topic, key, None)
        if window is not None:
            window.close(catchup.end_lsn)

    # --- confirmation, heartbeats, metrics ---------------------------------------------

    def position(self) -> int:
        acked = self.delivery.acked_position()
        if self.begin is None and self.delivery.idle():
            acked = max(acked, self.reader.wal_end)
        return acked

    def _allowed(self, position: int) -> int:
        """`position` within the bound Kafka holds (offsets.ConfirmLimit)."""
        return self.limit.allow(position, self.delivery.producer)

    def housekeeping(self, answer: bool = False) -> None:
        """`answer`: the server asked for a status update (a keepalive wanting a reply)."""
        self.delivery.poll(0)
        if self.catchup is not None and self.begin is None and self.catchup.passed(self.reader.wal_end):
            self._finish_catchup()
        now = time.monotonic()
        position = self.position()
        if self.incremental is not None:
            self.incremental.acknowledged(position)
            self._next_chunk()
        position = self._allowed(position)
        idle = self.begin is None and self.delivery.idle()
        if answer or position > self.confirmed or now - self._last_feedback >= FEEDBACK_INTERVAL_S:
            self._confirm(position, reply=idle)
        if self.opts.heartbeat_interval_s > 0 and now - self._last_heartbeat >= self.opts.heartbeat_interval_s:
            self._heartbeat()
            self._last_heartbeat = now
        if now - self._last_track >= FEEDBACK_INTERVAL_S:
            self._last_track = now
            self.delivery.track(now)
        if now - self._last_lag >= LAG_INTERVAL_S:
            self._last_lag = now
            lag = slot_lag_bytes(self.catalog, self.opts.slot)
            if lag is not None:
                metrics.capture_slot_lag_bytes.set(lag)

    def _confirm(self, position: int, reply: bool = False) -> None:
        position = max(position, self.confirmed)
        self.cur.send_feedback(write_lsn=position, flush_lsn=position, reply=reply, force=True)
        self._last_feedback = time.monotonic()
        if position > self.confirmed:
            self.confirmed = position
            metrics.capture_confirmed_lsn.set(position)

    def _keep_alive(self) -> None:
        """While blocked on a full Kafka queue: the walsender must still hear from us."""
        if time.monotonic() - self._last_feedback >= FEEDBACK_INTERVAL_S:
            self._confirm(self._allowed(self.delivery.acked_position()))

    def _heartbeat(self) -> None:
        topic, key, value = heartbeat_record(self.opts.prefix, self.opts.schemas)
        self.delivery.send(None, topic, key, value)  # counted once Kafka has it
        if self.opts.heartbeat_table:
            try:
                with self.catalog.cursor() as cur:
                    cur.execute(sql.SQL("INSERT INTO {} (id, ts) VALUES (1, now()) ON CONFLICT (id) "
                                        "DO UPDATE SET ts = excluded.ts").format(
                                            TableRef.parse(self.opts.heartbeat_table).ident()))
            except Exception as exc:  # noqa: BLE001 - a missing grant must not stop capture
                self.catalog.rollback()
                log.warning("heartbeat write to %s failed: %s", self.opts.heartbeat_table, exc)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Graceful stop: wait for Kafka's acks, confirm what they cover, close."""
        if not self.delivery.drain(timeout):
            log.warning("stopping with %d records unacknowledged; they will be re-sent",
                        self.delivery.in_flight())
        try:
            self._confirm(self.limit.settle(self.position(), self.delivery.producer))
        finally:
            metrics.capture_connected.set(0)
        log.info("stopped; slot %s confirmed at %s", self.opts.slot, po.int_to_lsn(self.confirmed))
