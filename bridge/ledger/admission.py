"""Admission: turn a polled batch of change events into ledger rows, atomically.

For each event, inside the batch's one transaction:

- seen before (Kafka redelivery, a connector restart, a retry-topic record, a replay)
  → reuse its notifications; only those not yet sent are handed out again;
- new → run the transition engine with a `StateStore` bound to this same transaction,
  insert its notifications as `pending` and mark the event seen. A `BadInputError`
  rolls back this event's savepoint only (its state changes too) and is reported for
  the DLQ; the rest of the batch goes on.

So the dossier's last-known state, the "event seen" mark and the pending notifications
are committed together, before any delivery call: the pending row is the record made
"before the call" (design.md §5).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, delete, select, update

from bridge.errors import BadInputError
from bridge.ledger.records import StoredNotification, notification_values, stored_from_row
from bridge.ledger.tables import (DEAD, PENDING, UNSENT_STATUSES, dossier_state, events_seen,
                                  notifications)
from bridge.model import ChangeEvent, Dossier, Notification
from bridge.transitions import StateStore, dossier_from_dict, dossier_to_dict

Notify = Callable[[ChangeEvent, StateStore], list[Notification]]


@dataclass(frozen=True, slots=True)
class Incoming:
    event: ChangeEvent
    event_id: str
    dossier_key: str
    # Republished from the DLQ by an operator: dead notifications get another chance.
    replay: bool = False


@dataclass(slots=True)
class Admission:
    to_send: list[StoredNotification] = field(default_factory=list)
    error: BadInputError | None = None
    duplicate: bool = False


class SqlStateStore:
    """The transition engine's StateStore, inside the admission transaction."""

    def __init__(self, conn: Connection, now_ms: int) -> None:
        self._conn = conn
        self._now_ms = now_ms

    def get(self, dossier_key: str) -> Dossier | None:
        state = self._conn.execute(select(dossier_state.c.state)
                                   .where(dossier_state.c.dossier_key == dossier_key)).scalar()
        return None if state is None else dossier_from_dict(json.loads(state))

    def put(self, dossier_key: str, dossier: Dossier) -> None:
        state = json.dumps(dossier_to_dict(dossier), ensure_ascii=False, default=str)
        upsert(self._conn, dossier_state, {"dossier_key": dossier_key, "state": state,
                                           "updated_at_ms": self._now_ms}, ["dossier_key"])

    def delete(self, dossier_key: str) -> None:
        self._conn.execute(delete(dossier_state).where(dossier_state.c.dossier_key == dossier_key))


def admit(conn: Connection, batch: list[Incoming], notify: Notify, now_ms: int) -> list[Admission]:
    """Admit `batch` in order; the caller owns the transaction."""
    seen = _already_seen(conn, [item.event_id for item in batch])
    store = SqlStateStore(conn, now_ms)
    results: list[Admission] = []
    for item in batch:
        if item.event_id in seen:
            results.append(_reuse(conn, item, now_ms))
            continue
        savepoint = conn.begin_nested()
        try:
            found = notify(item.event, store)
            stored = [_insert(conn, n, item.dossier_key, now_ms) for n in found]
            conn.execute(events_seen.insert().values(
                event_id=item.event_id, dossier_key=item.dossier_key, seen_at_ms=now_ms))
        except BadInputError as exc:
            savepoint.rollback()
            results.append(Admission(error=exc))
            continue
        savepoint.commit()
        seen.add(item.event_id)
        results.append(Admission(to_send=[s for s in stored if s.status in UNSENT_STATUSES]))
    return results


def _already_seen(conn: Connection, event_ids: list[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(event_ids))
    for start in range(0, len(unique), 500):  # stay under bind-parameter limits
        chunk = unique[start:start + 500]
        found.update(conn.execute(select(events_seen.c.event_id)
                                  .where(events_seen.c.event_id.in_(chunk))).scalars())
    return found


def _reuse(conn: Connection, item: Incoming, now_ms: int) -> Admission:
    if item.replay:
        conn.execute(update(notifications)
                     .where(notifications.c.event_id == item.event_id,
                            notifications.c.status == DEAD)
                     .values(status=PENDING, rounds=0, updated_at_ms=now_ms))
    rows = conn.execute(select(notifications).where(notifications.c.event_id == item.event_id)
                        .order_by(notifications.c.id)).all()
    unsent = [stored_from_row(r) for r in rows if r.status in UNSENT_STATUSES]
    return Admission(to_send=unsent, duplicate=True)


def _insert(conn: Connection, n: Notification, dossier_key: str, now_ms: int) -> StoredNotification:
    # The same idempotency key may already exist (an event id pruned from events_seen
    # and seen again): keep the first row, it knows whether it was sent.
    insert_ignore(conn, notifications, notification_values(n, dossier_key, PENDING, now_ms),
                  ["idempotency_key"])
    row = conn.execute(select(notifications)
                       .where(notifications.c.idempotency_key == n.idempotency_key)).one()
    return stored_from_row(row)


def _dialect_insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def upsert(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    stmt = _dialect_insert(conn, table).values(**values)
    changed = {k: v for k, v in values.items() if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed))


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    stmt = _dialect_insert(conn, table).values(**values)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))
