"""Row ↔ value conversions for the ledger, and the value types it hands out."""

from __future__ import annotations

import orjson
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from bridge.model import Notification


@dataclass(frozen=True, slots=True)
class StoredNotification:
    """A notification as the ledger knows it: admission order, status, retry rounds."""

    seq: int                # admission order; "earlier" for per-dossier FIFO
    dossier_key: str
    status: str
    rounds: int
    notification: Notification

    @property
    def key(self) -> str:
        return self.notification.idempotency_key


def notification_values(n: Notification, dossier_key: str, status: str, now_ms: int) -> dict[str, Any]:
    return {
        "idempotency_key": n.idempotency_key, "event_id": n.event_id, "dossier_key": dossier_key,
        "dossier_code": n.dossier_code,
        "dossier_id": None if n.dossier_id is None else str(n.dossier_id),
        "kind": n.kind, "phone": n.phone, "text": n.text,
        "template_data": orjson.dumps(n.template_data, option=orjson.OPT_SORT_KEYS).decode(),
        "template_version": n.template_version, "source_ts_ms": n.source_ts_ms,
        "status": status, "rounds": 0, "created_at_ms": now_ms, "updated_at_ms": now_ms,
    }


def stored_from_row(row: Row[Any]) -> StoredNotification:
    m = row._mapping
    n = Notification(
        dossier_code=m["dossier_code"], dossier_id=m["dossier_id"], kind=m["kind"],
        phone=m["phone"], text=m["text"], template_data=orjson.loads(m["template_data"]),
        idempotency_key=m["idempotency_key"], event_id=m["event_id"],
        source_ts_ms=m["source_ts_ms"], template_version=m["template_version"])
    return StoredNotification(seq=int(m["id"]), dossier_key=m["dossier_key"], status=m["status"],
                              rounds=int(m["rounds"]), notification=n)
