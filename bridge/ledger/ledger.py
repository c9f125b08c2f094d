"""The delivery ledger: what was seen, what must be sent, what was sent, at what cost.

Thread-safe: every method opens its own short transaction from the engine's pool.
In the bridge one thread (the consumer loop) does all writes — admission batches and
grouped outcomes — so SQLite's single writer never waits for itself; reads (`read()`)
do not take the write lock.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, text

from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.ledger import retention
from bridge.ledger.admission import Admission, Incoming, Notify, admit
from bridge.ledger.engine import is_sqlite, make_engine, reader
from bridge.ledger.migrate import migrate
from bridge.ledger.outcomes import OutcomeRow, sent_row, write_outcomes
from bridge.ledger.records import StoredNotification, stored_from_row
from bridge.ledger.retention import Pass
from bridge.ledger.tables import (DEAD, PARKED_STATUSES, events_seen, notifications,
                                  replay_audit)

log = logging.getLogger(__name__)
Clock = Callable[[], float]


def _ms(clock: Clock) -> int:
    return int(clock() * 1000)


class Ledger:
    def __init__(self, engine: Engine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # Where the redaction passes stopped (rows before are done; a restart starts over).
        self._sent_from, self._closed_from = retention.Position(0, 0), retention.Position(0, "")

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

    # --- outcomes ------------------------------------------------------------------------
    def record_outcomes(self, rows: list[OutcomeRow]) -> None:
        """Everything settled since the last call, in one transaction."""
        if rows:
            with self.engine.begin() as conn:
                write_outcomes(conn, rows, _ms(self.clock))

    def record_sent(self, key: str, outcome: DeliveryOutcome) -> None:
        self.record_outcomes([sent_row(key, outcome)])

    def record_unsent(self, key: str, status: str, *, error_class: str, error_message: str,
                      attempts: Iterable[Attempt] = (), count_round: bool = False) -> int:
        """Deferred, failed (retry topic) or dead (DLQ); returns the rounds used so far."""
        self.record_outcomes([OutcomeRow(key, status, error_class=error_class,
                                         error_message=error_message, attempts=tuple(attempts),
                                         count_round=count_round)])
        stored = self.get(key)
        return stored.rounds if stored else 0

    def get(self, key: str) -> StoredNotification | None:
        with reader(self.engine) as conn:
            row = conn.execute(select(notifications)
                               .where(notifications.c.idempotency_key == key)).first()
        return None if row is None else stored_from_row(row)

    def parked(self) -> dict[str, set[int]]:
        """dossier key → admission seqs of its notifications waiting in the retry topic."""
        result: dict[str, set[int]] = defaultdict(set)
        with reader(self.engine) as conn:
            rows = conn.execute(select(notifications.c.dossier_key, notifications.c.id)
                                .where(notifications.c.status.in_(PARKED_STATUSES)))
            for dossier_key, seq in rows:
                result[dossier_key].add(int(seq))
        return dict(result)

    def earlier_parked(self, dossier_key: str, seq: int) -> bool:
        with reader(self.engine) as conn:
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
        with self.engine.begin() as conn:
            result = conn.execute(delete(events_seen).where(
                events_seen.c.seen_at_ms < self._cutoff(older_than_s)))
        return int(result.rowcount or 0)

    def redact_sent(self, older_than_s: float, budget_s: float = 2.0) -> Pass:
        """Blank what notices sent longer ago said (retention.redact_sent)."""
        return retention.redact_sent(self.engine, self._cutoff(older_than_s), self._sent_from,
                                     budget_s=budget_s)

    def redact_closed(self, older_than_s: float, budget_s: float = 2.0) -> Pass:
        """Blank who dossiers closed longer ago belonged to (retention.redact_closed)."""
        return retention.redact_closed(self.engine, self._cutoff(older_than_s), self._closed_from,
                                       budget_s=budget_s)

    def _cutoff(self, older_than_s: float) -> int:
        return _ms(self.clock) - int(older_than_s * 1000)

    def check_writable(self) -> None:
        """Raise if a write transaction cannot be opened and committed (for /readyz)."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            if not is_sqlite(self.engine):
                conn.execute(text("SELECT txid_current()"))  # forces a real write xid

    def counts(self) -> dict[str, int]:
        with reader(self.engine) as conn:
            rows = conn.execute(select(notifications.c.status, func.count())
                                .group_by(notifications.c.status))
            return {status: int(n) for status, n in rows}


__all__ = ["Admission", "DEAD", "Incoming", "Ledger", "OutcomeRow", "StoredNotification"]
