"""Personal data the ledger no longer needs, blanked on a schedule (`ledger.redact_*`).

Each pass walks the rows old enough in (updated_at_ms, key) order from where the last
one stopped, and stops after `budget_s`: the consumer loop runs it between batches, and
a first pass over years of rows must not hold consumption past `max.poll.interval.ms`.
The loop comes back soon while a pass reports more to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, bindparam, not_, select, tuple_, update

from bridge.ledger.tables import SENT, dossier_state, notifications
from bridge.model import OPEN_STATUSES
from bridge.transitions import dump_state, load_state

_CLEARED = ("applicant_name", "applicant_phone", "note")  # who the citizen is, what they were told


@dataclass
class Position:
    """Where a pass stopped: rows at or before it are done (a restart walks them once more)."""

    ms: int
    key: Any  # the row's key, to order rows of the same millisecond


@dataclass(frozen=True)
class Pass:
    redacted: int
    finished: bool  # False: the budget ran out first


Page = Callable[[Position], Select[Any]]  # the next rows after a position, (…, ms, key) last
Redact = Callable[[Connection, Sequence[Any]], int]


def redact_sent(engine: Engine, cutoff_ms: int, at: Position, *, batch: int = 2000,
                budget_s: float = 2.0) -> Pass:
    """Blank the text, template data and phone of notices sent before `cutoff_ms`. Status,
    kind, channel, price and the idempotency key stay: the reports and the guard against
    a redelivered old event need nothing else."""
    n = notifications.c

    def page(at: Position) -> Select[Any]:
        return select(n.updated_at_ms, n.id).where(
            n.status == SENT, n.updated_at_ms < cutoff_ms,
            tuple_(n.updated_at_ms, n.id) > tuple_(at.ms, at.key),
            n.phone.is_not(None) | (n.text != "")).order_by(n.updated_at_ms, n.id)

    def redact(conn: Connection, rows: Sequence[Any]) -> int:
        return conn.execute(update(notifications).where(n.id.in_([r.id for r in rows]))
                            .values(text="", template_data="{}", phone=None)).rowcount

    return _walk(engine, at, page, redact, batch, budget_s)


def redact_closed(engine: Engine, cutoff_ms: int, at: Position, *, batch: int = 2000,
                  budget_s: float = 2.0) -> Pass:
    """Blank the applicant's name, phone and note in the last-known state of dossiers
    closed (a status not in OPEN_STATUSES) and unchanged since before `cutoff_ms`. The
    status and dates stay: a later change of the dossier is still told from its past."""
    s = dossier_state.c
    cleared = and_(*(s.state.contains(f'"{name}":null') for name in _CLEARED))

    def page(at: Position) -> Select[Any]:
        return select(s.state, s.updated_at_ms, s.dossier_key).where(
            s.updated_at_ms < cutoff_ms, tuple_(s.updated_at_ms, s.dossier_key) > tuple_(at.ms, at.key),
            not_(cleared)).order_by(s.updated_at_ms, s.dossier_key)

    def redact(conn: Connection, rows: Sequence[Any]) -> int:
        changes = [{"k": key, "old": text, "new": dump_state(replace(
                        state, applicant_name=None, applicant_phone=None, note=None))}
                   for text, _ms, key in rows
                   if isinstance((state := load_state(text)).status, int)
                   and state.status not in OPEN_STATUSES]
        if not changes:
            return 0
        # Only where unchanged since read: this `run`'s admissions share the thread, another
        # instance's do not. (One statement for the batch: a round trip per row halves the pace.)
        conn.execute(update(dossier_state).where(s.dossier_key == bindparam("k"),
                                                 s.state == bindparam("old"))
                     .values(state=bindparam("new")), changes)
        return len(changes)

    return _walk(engine, at, page, redact, batch, budget_s)


def _walk(engine: Engine, at: Position, page: Page, redact: Redact, batch: int,
          budget_s: float) -> Pass:
    total, deadline = 0, time.monotonic() + budget_s
    while True:
        with engine.begin() as conn:
            rows: Sequence[Any] = conn.execute(page(at).limit(batch)).all()
            total += redact(conn, rows) if rows else 0
        if rows:
            at.ms, at.key = rows[-1][-2], rows[-1][-1]
        if len(rows) < batch:
            return Pass(total, True)
        if time.monotonic() >= deadline:
            return Pass(total, False)
