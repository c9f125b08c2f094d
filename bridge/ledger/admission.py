"""Admission: turn a polled batch of change events into ledger rows, atomically.

For each event, inside the batch's one transaction:

- seen before (Kafka redelivery, a connector restart, a retry-topic record, a replay)
  → reuse its notifications; only those not yet sent are handed out again;
- new → run the transition engine with a `StateStore` over this batch, insert its
  notifications as `pending` and mark the event seen. A `BadInputError` discards this
  event's state changes only and is reported for the DLQ; the rest of the batch goes on.

So the dossier's last-known state, the "event seen" mark and the pending notifications
are committed together, before any delivery call: the pending row is the record made
"before the call" (design.md §5).

Throughput: a batch costs a handful of statements whatever its size — states are read
in one query, the engine works on an in-memory overlay (later events of a dossier in
the same batch see earlier ones), and the writes go out as executemany.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update

from bridge.errors import BadInputError
from bridge.ledger.fastsql import dialect_insert, executemany
from bridge.ledger.records import StoredNotification, notification_values, stored_from_row
from bridge.ledger.tables import (DEAD, PENDING, UNSENT_STATUSES, dossier_state, events_seen,
                                  notifications)
from bridge.model import ChangeEvent, Dossier, Notification
from bridge.phone import normalise_phone
from bridge.transitions import StateStore, dump_state, load_state

log = logging.getLogger(__name__)
Notify = Callable[[ChangeEvent, StateStore, bool], list[Notification]]  # bool: replayed
_CHUNK = 500  # stay under bind-parameter limits
_SIZES = (1, 4, 16, 32, 64, 128, 256, _CHUNK)  # see `_padded`
_GONE = object()  # a deleted dossier in the overlay
_SEEN = events_seen.insert()


@dataclass(frozen=True, slots=True)
class Incoming:
    event: ChangeEvent
    event_id: str
    dossier_key: str
    # Republished from the DLQ by an operator: dead notifications get another chance.
    replay: bool = False
    phone: str | None = None  # a replayed event's number, read with today's column mapping


@dataclass(slots=True)
class Admission:
    to_send: list[StoredNotification] = field(default_factory=list)
    error: BadInputError | None = None
    duplicate: bool = False


class BatchStateStore:
    """The engine's StateStore for one batch: reads prefetched rows, buffers writes."""

    def __init__(self, stored: dict[str, str]) -> None:
        self._stored = stored               # dossier key → JSON from the table
        self._changes: dict[str, Any] = {}  # committed changes of earlier events
        self._trial: dict[str, Any] = {}    # changes of the event being processed

    def get(self, dossier_key: str) -> Dossier | None:
        for layer in (self._trial, self._changes):
            if dossier_key in layer:
                value = layer[dossier_key]
                return None if value is _GONE else value
        text = self._stored.get(dossier_key)
        return None if text is None else load_state(text)

    def put(self, dossier_key: str, dossier: Dossier) -> None:
        self._trial[dossier_key] = dossier

    def delete(self, dossier_key: str) -> None:
        self._trial[dossier_key] = _GONE

    def keep(self) -> None:
        self._changes.update(self._trial)
        self._trial = {}

    def discard(self) -> None:
        self._trial = {}

    def flush(self, conn: Connection, now_ms: int) -> None:
        gone = [k for k, v in self._changes.items() if v is _GONE]
        rows = [{"dossier_key": k, "updated_at_ms": now_ms, "state": dump_state(v)}
                for k, v in self._changes.items() if v is not _GONE]
        if rows:
            upsert_many(conn, dossier_state, rows, ["dossier_key"])
        for chunk in _chunks(gone):
            conn.execute(delete(dossier_state).where(dossier_state.c.dossier_key.in_(chunk)))


class SqlStateStore:
    """A StateStore on a connection, one statement per call (tools, tests)."""

    def __init__(self, conn: Connection, now_ms: int) -> None:
        self._conn, self._now_ms = conn, now_ms

    def get(self, dossier_key: str) -> Dossier | None:
        state = self._conn.execute(select(dossier_state.c.state)
                                   .where(dossier_state.c.dossier_key == dossier_key)).scalar()
        return None if state is None else load_state(state)

    def put(self, dossier_key: str, dossier: Dossier) -> None:
        upsert_many(self._conn, dossier_state, [{
            "dossier_key": dossier_key, "updated_at_ms": self._now_ms,
            "state": dump_state(dossier)}], ["dossier_key"])

    def delete(self, dossier_key: str) -> None:
        self._conn.execute(delete(dossier_state).where(dossier_state.c.dossier_key == dossier_key))


def admit(conn: Connection, batch: list[Incoming], notify: Notify, now_ms: int) -> list[Admission]:
    """Admit `batch` in order; the caller owns the transaction."""
    seen = _select_in(conn, events_seen.c.event_id, events_seen.c.event_id,
                      [item.event_id for item in batch])
    store = BatchStateStore(dict(_select_pairs(conn, dossier_state.c.dossier_key,
                                               dossier_state.c.state,
                                               [item.dossier_key for item in batch])))
    results: list[Admission] = []
    created: dict[int, list[tuple[Notification, str]]] = {}
    new_seen: list[dict[str, Any]] = []
    for index, item in enumerate(batch):
        if item.event_id in seen:
            results.append(Admission(duplicate=True))
            continue
        try:
            found = notify(item.event, store, item.replay)
        except BadInputError as exc:
            store.discard()
            results.append(Admission(error=exc))
            continue
        store.keep()
        seen.add(item.event_id)
        new_seen.append({"event_id": item.event_id, "dossier_key": item.dossier_key,
                         "seen_at_ms": now_ms})
        created[index] = [(n, item.dossier_key) for n in found]
        results.append(Admission())
    store.flush(conn, now_ms)
    rows = _insert_notifications(conn, [pair for pairs in created.values() for pair in pairs],
                                 now_ms)
    executemany(conn, _SEEN, new_seen)
    for index, pairs in created.items():
        stored = [rows[n.idempotency_key] for n, _ in pairs]
        results[index].to_send = [s for s in stored if s.status in UNSENT_STATUSES]
    _reuse(conn, batch, results, now_ms, store)
    return results


def _insert_notifications(conn: Connection, pairs: list[tuple[Notification, str]],
                          now_ms: int) -> dict[str, StoredNotification]:
    """Insert new notifications as pending; an existing key keeps its row (and status)."""
    if not pairs:
        return {}
    values = {n.idempotency_key: (n, notification_values(n, key, PENDING, now_ms))
              for n, key in pairs}
    stmt = (dialect_insert(conn.dialect.name, notifications)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(notifications.c.id, notifications.c.idempotency_key))
    rows = _padded([v for _, v in values.values()])  # duplicates are conflicts: ignored
    inserted = {key: seq for seq, key in conn.execute(stmt, rows)}
    result = {key: StoredNotification(inserted[key], row["dossier_key"], PENDING, 0, n)
              for key, (n, row) in values.items() if key in inserted}
    # Keys that existed already (an event id pruned and seen again): their own rows.
    missing = [key for key in values if key not in inserted]
    result.update({s.key: s for s in _rows_where(conn, notifications.c.idempotency_key, missing)})
    return result


def _reuse(conn: Connection, batch: list[Incoming], results: list[Admission], now_ms: int,
           store: BatchStateStore) -> None:
    """Fill in the notifications of events seen before (after this batch's own inserts)."""
    wanted = [(i, item) for i, (item, result) in enumerate(zip(batch, results))
              if result.duplicate]
    if not wanted:
        return
    replayed = {item.event_id: item.phone for _, item in wanted if item.replay}
    if replayed:
        _revive(conn, replayed, store, now_ms)
    by_event: dict[str, list[StoredNotification]] = {}
    for stored in _rows_where(conn, notifications.c.event_id,
                              list({item.event_id for _, item in wanted})):
        by_event.setdefault(stored.notification.event_id, []).append(stored)
    for index, item in wanted:
        rows = sorted(by_event.get(item.event_id, []), key=lambda s: s.seq)
        results[index].to_send = [s for s in rows if s.status in UNSENT_STATUSES]


def _revive(conn: Connection, phones: dict[str, str | None], store: BatchStateStore,
            now_ms: int) -> None:
    """Dead notices of replayed events (event id → its phone read today) get another
    chance, addressed to the dossier's phone as last known — the desk may have typed it
    since: a phone alone is no transition, so nothing else would carry it to the notice —
    else to the event's own, read with today's column mapping (a renamed phone column
    fixed). Not a notice the dossier has moved past — a later notice of it was admitted
    and not dead-lettered: "please add documents" after "your result is ready" would
    mislead the citizen."""
    dead = [s for s in _rows_where(conn, notifications.c.event_id, list(phones))
            if s.status == DEAD]
    if not dead:
        return
    latest = dict(_select_latest_live(conn, list({s.dossier_key for s in dead})))
    for s in dead:
        n = s.notification
        if latest.get(s.dossier_key, 0) > s.seq:
            log.info("replayed notice not sent: the dossier has moved on since", extra={
                "dossier_code": n.dossier_code, "kind": n.kind, "idempotency_key": n.idempotency_key})
            continue
        values: dict[str, Any] = {"status": PENDING, "rounds": 0, "updated_at_ms": now_ms}
        state = store.get(s.dossier_key)
        phone = (normalise_phone(state.applicant_phone) if state is not None else None) \
            or phones[n.event_id]
        if phone is not None and phone != n.phone:
            values["phone"] = phone
        conn.execute(update(notifications).where(notifications.c.id == s.seq).values(**values))


def _select_latest_live(conn: Connection, keys: list[str]) -> list[tuple[str, int]]:
    """dossier key → admission seq of its latest notice that is not dead-lettered."""
    pairs: list[tuple[str, int]] = []
    for chunk in _chunks(keys):
        pairs.extend((key, seq) for key, seq in conn.execute(
            select(notifications.c.dossier_key, func.max(notifications.c.id))
            .where(notifications.c.dossier_key.in_(chunk), notifications.c.status != DEAD)
            .group_by(notifications.c.dossier_key)))
    return pairs


# --- helpers ---------------------------------------------------------------------------------

def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    """`values` in chunks for `IN (…)`, each padded (see `_padded`)."""
    for start in range(0, len(values), _CHUNK):
        yield _padded(values[start:start + _CHUNK])


def _padded(values: list[Any]) -> list[Any]:
    """`values` lengthened to the next of a few sizes by repeating its last element.

    Each distinct length of an `IN (…)` list or a multi-row INSERT is its own SQL text,
    so its own prepared statement in every pooled connection's statement cache (128 per
    connection, up to tens of KB each for hundreds of parameters). Batch sizes vary with
    the load, so without this the bridge grew by some 40 MB while draining a backlog.
    Repeating an element changes nothing for IN, nor for an INSERT that ignores conflicts.
    """
    size = next((s for s in _SIZES if s >= len(values)), len(values))
    return values + values[-1:] * (size - len(values)) if values else values


def _select_in(conn: Connection, column: Any, where: Any, values: list[Any]) -> set[Any]:
    found: set[Any] = set()
    for chunk in _chunks(list(dict.fromkeys(values))):
        found.update(conn.execute(select(column).where(where.in_(chunk))).scalars())
    return found


def _select_pairs(conn: Connection, key: Any, value: Any, keys: list[Any]) -> list[tuple[Any, Any]]:
    pairs: list[tuple[Any, Any]] = []
    for chunk in _chunks(list(dict.fromkeys(keys))):
        pairs.extend((k, v) for k, v in conn.execute(select(key, value).where(key.in_(chunk))))
    return pairs


def _rows_where(conn: Connection, column: Any, values: list[Any]) -> list[StoredNotification]:
    rows: list[StoredNotification] = []
    for chunk in _chunks(list(dict.fromkeys(values))):
        rows.extend(stored_from_row(r) for r in conn.execute(
            select(notifications).where(column.in_(chunk))))
    return rows


_UPSERTS: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def upsert_many(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    columns = tuple(c for c in rows[0] if c not in keys)
    cache_key = (conn.dialect.name, table.name, tuple(rows[0]))
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:  # built once per shape, so the fast executemany can cache its SQL
        base = dialect_insert(conn.dialect.name, table)
        stmt = base.on_conflict_do_update(index_elements=keys,
                                          set_={c: getattr(base.excluded, c) for c in columns})
        _UPSERTS[cache_key] = stmt
    executemany(conn, stmt, rows)


def upsert(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    upsert_many(conn, table, [values], keys)


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    stmt = dialect_insert(conn.dialect.name, table).on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, [values])


__all__ = ["Admission", "BatchStateStore", "Incoming", "Notify", "SqlStateStore", "admit",
           "insert_ignore", "upsert", "upsert_many"]
