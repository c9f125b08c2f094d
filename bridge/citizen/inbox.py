"""The webhook inbox: each accepted event is on disk before Zalo gets its 200.

Zalo delivers at least once and retries for up to an hour (zalo-api.md §7.1), so the
inbox's unique `event_key` is the dedupe: ``<event_name>:<message.msg_id>`` when the
event carries one, else the SHA-256 of the raw body (a retry resends the same bytes).
Rows wait as `new` until a worker has handled them; after a crash they are handed out
again in arrival order.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from bridge.citizen.tables import webhook_inbox
from bridge.ledger.fastsql import dialect_insert

NEW, DONE, FAILED = "new", "done", "failed"
_MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class InboxEvent:
    seq: int
    event_name: str
    user_key: str
    body: dict[str, Any]
    received_at_ms: int
    headers: dict[str, str]


def event_key(body: dict[str, Any], raw: bytes) -> str:
    name = str(body.get("event_name") or "unknown")
    message = body.get("message")
    msg_id = message.get("msg_id") if isinstance(message, dict) else None
    if isinstance(msg_id, (str, int)) and str(msg_id):
        return f"{name}:{msg_id}"[:255]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if isinstance(value, (str, int)) and str(value) else ""


def user_key(body: dict[str, Any], oa_id: str) -> str:
    """The citizen an event is about (events of one citizen are handled in order)."""
    name = str(body.get("event_name") or "")
    if name in ("follow", "unfollow"):
        return _id(body.get("follower")) or _id(body.get("user_id")) or "-"
    sender, recipient = _id(body.get("sender")), _id(body.get("recipient"))
    if name.startswith("oa_") or name in ("user_received_message", "user_seen_message"):
        # OA → citizen messages and their receipts: sources differ on which side the OA
        # is (zalo-api.md §10.9), so the citizen is whichever side is not the OA.
        oa_ids = {oa_id, _id(body.get("oa_id"))} - {""}
        return (recipient if sender in oa_ids else sender) or recipient or "-"
    return sender or _id(body.get("user_id")) or _id(body.get("follower")) or recipient or "-"


class Inbox:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def values(self, key: str, name: str, user: str, raw: bytes, variant: str,
               headers: dict[str, str]) -> dict[str, Any]:
        """The row to insert for one event (see `store_many`)."""
        stored = {"headers": headers, "raw": raw.decode("utf-8", "replace")}
        return {"event_key": key, "event_name": name[:64], "user_key": user[:255],
                "body": json.dumps(stored, ensure_ascii=False), "signature_variant": variant,
                "received_at_ms": int(self.clock() * 1000), "status": NEW, "attempts": 0}

    def store(self, key: str, name: str, user: str, raw: bytes, variant: str,
              headers: dict[str, str]) -> int | None:
        """Insert; the new row's seq, or None when the event is already there."""
        return self.store_many([self.values(key, name, user, raw, variant, headers)])[0]

    def store_many(self, rows: list[dict[str, Any]]) -> list[int | None]:
        """Insert rows in one transaction; per row its seq, or None for a duplicate."""
        with self.engine.begin() as conn:
            stmt = _insert_stmt(conn.dialect.name)
            return [None if (seq := conn.execute(stmt, row).scalar()) is None else int(seq)
                    for row in rows]

    def pending(self, limit: int = 10_000) -> list[InboxEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhook_inbox).where(webhook_inbox.c.status == NEW)
                                .order_by(webhook_inbox.c.seq).limit(limit)).all()
        return [to_event(r._mapping) for r in rows]

    def finish(self, seq: int, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(webhook_inbox).where(webhook_inbox.c.seq == seq).values(
                status=FAILED if error else DONE, error=None if error is None else error[:_MAX_ERROR],
                attempts=webhook_inbox.c.attempts + 1,
                processed_at_ms=int(self.clock() * 1000)))

    def prune(self, older_than_s: float) -> int:
        """Forget handled events older than the age (raw bodies hold phone numbers).

        Keep it well above Zalo's retry horizon (1 h) so that late retries still dedupe."""
        cutoff = int((self.clock() - older_than_s) * 1000)
        with self.engine.begin() as conn:
            result = conn.execute(delete(webhook_inbox).where(
                webhook_inbox.c.status != NEW, webhook_inbox.c.received_at_ms < cutoff))
        return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhook_inbox.c.status, func.count())
                                .group_by(webhook_inbox.c.status))
            return {status: int(n) for status, n in rows}


@cache
def _insert_stmt(dialect: str) -> Any:
    """Built once: a statement object reused with parameters hits SQLAlchemy's compiled
    cache (building `.values(...)` per row would compile every time)."""
    return dialect_insert(dialect, webhook_inbox).on_conflict_do_nothing(
        index_elements=["event_key"]).returning(webhook_inbox.c.seq)


def to_event(m: Any) -> InboxEvent:
    stored = json.loads(m["body"])
    body = json.loads(stored["raw"])
    return InboxEvent(seq=int(m["seq"]), event_name=m["event_name"], user_key=m["user_key"],
                      body=body, received_at_ms=int(m["received_at_ms"]),
                      headers=stored.get("headers") or {})
