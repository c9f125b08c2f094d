"""Delivery outcomes, written in groups: one transaction for everything settled since the
last write, whatever the number of workers (SQLite has one writer; PostgreSQL round
trips cost too). Same-shaped UPDATEs go out as one executemany."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, update

from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.ledger.fastsql import executemany
from bridge.ledger.tables import SENT, delivery_attempts, notifications

MAX_ERROR_TEXT = 2000


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """What became of one notification (status: sent | deferred | failed | dead)."""

    key: str
    status: str
    channel: str | None = None
    price_vnd: int | None = None
    provider_message_id: str | None = None
    sms_equivalent_vnd: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    attempts: tuple[Attempt, ...] = field(default=())
    count_round: bool = False


def sent_row(key: str, outcome: DeliveryOutcome) -> OutcomeRow:
    return OutcomeRow(key, SENT, outcome.channel, outcome.price_vnd, outcome.provider_message_id,
                      outcome.sms_equivalent_vnd, attempts=tuple(outcome.attempts))


_SENT = (update(notifications)
         .where(notifications.c.idempotency_key == bindparam("k"))
         .values(status=SENT, channel=bindparam("ch"), price_vnd=bindparam("price"),
                 sms_equivalent_vnd=bindparam("sms"), provider_message_id=bindparam("pid"),
                 error_class=None, error_message=None, updated_at_ms=bindparam("now")))
_ATTEMPT = delivery_attempts.insert()
_UNSENT = (update(notifications)
           .where(notifications.c.idempotency_key == bindparam("k"))
           .values(status=bindparam("st"), error_class=bindparam("cls"),
                   error_message=bindparam("msg"), rounds=notifications.c.rounds + bindparam("inc"),
                   updated_at_ms=bindparam("now")))


def write_outcomes(conn: Connection, rows: Iterable[OutcomeRow], now_ms: int) -> None:
    sent: list[dict[str, Any]] = []
    unsent: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for row in rows:
        if row.status == SENT:
            sent.append({"k": row.key, "ch": row.channel, "price": row.price_vnd,
                         "sms": row.sms_equivalent_vnd, "pid": row.provider_message_id,
                         "now": now_ms})
        else:
            unsent.append({"k": row.key, "st": row.status, "cls": row.error_class,
                           "msg": (row.error_message or "")[:MAX_ERROR_TEXT],
                           "inc": 1 if row.count_round else 0, "now": now_ms})
        attempts.extend(attempt_values(row.key, a, row.provider_message_id) for a in row.attempts)
    executemany(conn, _SENT, sent)
    executemany(conn, _UNSENT, unsent)
    executemany(conn, _ATTEMPT, attempts)


def attempt_values(key: str, a: Attempt, provider_message_id: str | None) -> dict[str, Any]:
    return {"idempotency_key": key, "channel": a.channel, "result": a.result,
            "price_vnd": a.price_vnd,
            "provider_message_id": provider_message_id if a.result == "ok" else None,
            "error_code": None if a.error_code is None else str(a.error_code),
            "error_message": None if a.error_message is None else a.error_message[:MAX_ERROR_TEXT],
            "at_ms": int(a.at.timestamp() * 1000)}
