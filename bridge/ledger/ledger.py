"""The delivery ledger: what was seen, what must be sent, what was sent, at what cost.

Thread-safe: every method opens its own short transaction from the engine's pool,
so the consumer thread and the worker threads can share one `Ledger`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, text, update

from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.ledger.admission import Admission, Incoming, Notify, admit
from bridge.ledger.engine import is_sqlite, make_engine
from bridge.ledger.migrate import migrate
from bridge.ledger.records import StoredNotification, stored_from_row
from bridge.ledger.tables import (DEAD, PARKED_STATUSES, SENT, delivery_attempts, events_seen,
                                  notifications, replay_audit)

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_MAX_ERROR_TEXT = 2000


def _ms(clock: Clock) -> int:
    return int(clock() * 1000)


class Ledger:
    def __init__(self, engine: Engine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, url: str, *, pool_size: int = 12, clock: Clock = time.time) -> Ledger:
        """Connect and migrate to the newest schema."""
        ledger = cls(make_engine(url, pool_size=pool_size), clock=clock)
        migrate(ledger.engine)
        return ledger

    def close(self) -> None:
        self.engine.dispose()

    # --- admission (consumer thread) -----------------------------------------------------
    def admit(self, batch: list[Incoming], notify: Notify) -> list[Admission]:
        """One transaction for the whole polled batch (see bridge.ledger.admission)."""
        if not batch:
            return []
        with self.engine.begin() as conn:
            return admit(conn, batch, notify, _ms(self.clock))

    # --- outcomes (worker threads) -------------------------------------------------------
    def record_sent(self, key: str, outcome: DeliveryOutcome) -> None:
        now = _ms(self.clock)
        with self.engine.begin() as conn:
            conn.execute(update(notifications).where(notifications.c.idempotency_key == key)
                         .values(status=SENT, channel=outcome.channel, price_vnd=outcome.price_vnd,
                                 provider_message_id=outcome.provider_message_id,
                                 error_class=None, error_message=None, updated_at_ms=now))
            _insert_attempts(conn, key, outcome.attempts, outcome.provider_message_id)

    def record_unsent(self, key: str, status: str, *, error_class: str, error_message: str,
                      attempts: Iterable[Attempt] = (), count_round: bool = False) -> int:
        """Deferred, failed (retry topic) or dead (DLQ); returns the rounds used so far."""
        now = _ms(self.clock)
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"status": status, "error_class": error_class,
                                      "error_message": error_message[:_MAX_ERROR_TEXT],
                                      "updated_at_ms": now}
            if count_round:
                values["rounds"] = notifications.c.rounds + 1
            conn.execute(update(notifications).where(notifications.c.idempotency_key == key)
                         .values(**values))
            _insert_attempts(conn, key, attempts)
            rounds = conn.execute(select(notifications.c.rounds)
                                  .where(notifications.c.idempotency_key == key)).scalar()
        return int(rounds or 0)

    def get(self, key: str) -> StoredNotification | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(notifications)
                               .where(notifications.c.idempotency_key == key)).first()
        return None if row is None else stored_from_row(row)

    def parked(self) -> dict[str, set[int]]:
        """dossier key → admission seqs of its notifications waiting in the retry topic."""
        result: dict[str, set[int]] = defaultdict(set)
        with self.engine.connect() as conn:
            rows = conn.execute(select(notifications.c.dossier_key, notifications.c.id)
                                .where(notifications.c.status.in_(PARKED_STATUSES)))
            for dossier_key, seq in rows:
                result[dossier_key].add(int(seq))
        return dict(result)

    def earlier_parked(self, dossier_key: str, seq: int) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(select(notifications.c.id).where(
                notifications.c.dossier_key == dossier_key,
                notifications.c.status.in_(PARKED_STATUSES),
                notifications.c.id < seq).limit(1)).first()
        return found is not None

    # --- operator actions ---------------------------------------------------------------
    def record_replay(self, audit: dict[str, Any], *, replayed_at: datetime) -> None:
        """One row of `onestop-bridge dlq replay`'s audit trail."""
        with self.engine.begin() as conn:
            conn.execute(replay_audit.insert().values(
                dlq_topic=audit["dlq_topic"], dlq_partition=audit["dlq_partition"],
                dlq_offset=audit["dlq_offset"], target_topic=audit["target_topic"],
                dossier_code=audit.get("dossier_code"), kind=audit.get("kind"),
                error_class=audit.get("error_class"), dry_run=bool(audit.get("dry_run")),
                operator=audit.get("operator"),
                replayed_at_ms=int(replayed_at.timestamp() * 1000)))

    # --- housekeeping --------------------------------------------------------------------
    def prune_events(self, older_than_s: float) -> int:
        """Forget event ids older than the age; their notifications stay."""
        cutoff = _ms(self.clock) - int(older_than_s * 1000)
        with self.engine.begin() as conn:
            result = conn.execute(delete(events_seen).where(events_seen.c.seen_at_ms < cutoff))
        return int(result.rowcount or 0)

    def check_writable(self) -> None:
        """Raise if a write transaction cannot be opened and committed (for /readyz)."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            if not is_sqlite(self.engine):
                conn.execute(text("SELECT txid_current()"))  # forces a real write xid

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(notifications.c.status, func.count())
                                .group_by(notifications.c.status))
            return {status: int(n) for status, n in rows}


def _insert_attempts(conn: Any, key: str, attempts: Iterable[Attempt],
                     provider_message_id: str | None = None) -> None:
    rows = [{"idempotency_key": key, "channel": a.channel, "result": a.result,
             "price_vnd": a.price_vnd,
             "provider_message_id": provider_message_id if a.result == "ok" else None,
             "error_code": None if a.error_code is None else str(a.error_code),
             "error_message": None if a.error_message is None else a.error_message[:_MAX_ERROR_TEXT],
             "at_ms": int(a.at.timestamp() * 1000)} for a in attempts]
    if rows:
        conn.execute(delivery_attempts.insert(), rows)


__all__ = ["Admission", "DEAD", "Incoming", "Ledger", "StoredNotification"]
