"""Delivery receipts (`user_received_message`) → ledger, latency metric, rating prompt.

ZNS receipts carry our `tracking_id` (the notification's idempotency key) and
`delivery_time`; OA receipts carry only Zalo's `msg_id` (the provider message id the
dispatcher recorded). A receipt can outrun the dispatcher's own write of that id, so an
unmatched receipt is retried a few times (`NotYet`) before it is kept as unmatched.
When a RESULT_RETURNED notice is delivered and its phone is linked to a follower, that
follower gets the satisfaction prompt (once per dossier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from bridge import metrics
from bridge.citizen import messages, wording
from bridge.citizen.chat import rating_buttons
from bridge.citizen.inbox import InboxEvent
from bridge.citizen.replies import Replier
from bridge.citizen.store import CitizenStore
from bridge.citizen.tables import delivery_receipts
from bridge.ledger import LedgerFollowers
from bridge.ledger.admission import insert_ignore
from bridge.ledger.tables import notifications

log = logging.getLogger(__name__)
UNMATCHED_RETRIES = 5


class NotYet(Exception):
    """Process this event again a little later (the processor backs off)."""


@dataclass(frozen=True, slots=True)
class Matched:
    key: str
    kind: str
    phone: str | None
    dossier_code: str
    channel: str | None
    source_ts_ms: int | None


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


class Receipts:
    def __init__(self, engine: Engine, store: CitizenStore, followers: LedgerFollowers,
                 replier: Replier) -> None:
        self.engine = engine
        self.store = store
        self.followers = followers
        self.replier = replier

    def handle(self, event: InboxEvent, attempt: int) -> None:
        body = event.body
        raw = body.get("message")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        msg_id = message.get("msg_id")
        msg_id = str(msg_id) if isinstance(msg_id, (str, int)) else None
        tracking = message.get("tracking_id")
        tracking = str(tracking) if isinstance(tracking, (str, int)) else None
        zns = (event.headers.get("x-zevent-server", "").upper() == "ZNS"
               or "delivery_time" in message or tracking is not None)
        delivered_ms = _int(message.get("delivery_time")) or _int(body.get("timestamp")) \
            or event.received_at_ms
        found = self._match(tracking, msg_id)
        if found is None:
            if msg_id and self.store.mark_reply_delivered(msg_id, delivered_ms):
                return  # one of the OA's own replies
            if attempt < UNMATCHED_RETRIES:
                raise NotYet("receipt for a message the ledger does not know yet")
        channel = (found.channel if found and found.channel else ("zns" if zns else "zalo_oa"))
        first = self._record(event, channel, msg_id, tracking, found, delivered_ms)
        if found is None:
            log.info("delivery receipt matches no notification", extra={"channel": channel})
            return
        if first and found.source_ts_ms is not None:
            age = max(0.0, (delivered_ms - found.source_ts_ms) / 1000)
            metrics.event_to_delivered.labels(channel=channel).observe(age)
        if found.kind == "RESULT_RETURNED":
            self.prompt_rating(found)

    def prompt_rating(self, n: Matched) -> None:
        user_id = self.followers.user_for_phone(n.phone) if n.phone else None
        if user_id is None or self.store.prompt_sent(n.dossier_code, user_id):
            return
        body = messages.with_buttons(wording.rating_prompt(n.dossier_code),
                                     rating_buttons(n.dossier_code))
        message_id = self.replier.reply(user_id, body, "rating_prompt")
        if message_id is not None:
            self.store.record_prompt(n.dossier_code, user_id, n.key, message_id)
            self.store.set_context(user_id, n.dossier_code)

    def _match(self, tracking: str | None, msg_id: str | None) -> Matched | None:
        cols = (notifications.c.idempotency_key, notifications.c.kind, notifications.c.phone,
                notifications.c.dossier_code, notifications.c.channel,
                notifications.c.source_ts_ms)
        with self.engine.connect() as conn:
            row = None
            if tracking:
                row = conn.execute(select(*cols).where(
                    notifications.c.idempotency_key == tracking)).first()
            if row is None and msg_id:
                row = conn.execute(select(*cols).where(
                    notifications.c.provider_message_id == msg_id).limit(1)).first()
        return None if row is None else Matched(*row)

    def _record(self, event: InboxEvent, channel: str, msg_id: str | None,
                tracking: str | None, found: Matched | None, delivered_ms: int) -> bool:
        """Store the receipt; True when it is the first one for that notification."""
        key = found.key if found else None
        with self.engine.begin() as conn:
            earlier = key is not None and conn.execute(
                select(delivery_receipts.c.id).where(delivery_receipts.c.idempotency_key == key)
                .limit(1)).first() is not None
            insert_ignore(conn, delivery_receipts, {
                "event_key": f"inbox:{event.seq}", "channel": channel, "msg_id": msg_id,
                "tracking_id": tracking, "idempotency_key": key,
                "delivered_at_ms": delivered_ms, "received_at_ms": event.received_at_ms},
                ["event_key"])
        return not earlier
