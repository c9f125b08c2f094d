"""Read what the report needs from the delivery ledger (SQLAlchemy Core, the ledger's tables).

Read-only: the report never migrates or writes. A SQLite ledger is opened with a plain
engine (deferred transactions), not the bridge's BEGIN IMMEDIATE engine, so a report
run by a director never holds the write lock the running bridge needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, case, create_engine, func, select

from bridge import dburl
from bridge.errors import ConfigError
from bridge.ledger.engine import make_engine
from bridge.ledger.migrate import current_version, discover
from bridge.ledger.tables import (DEAD, SENT, delivery_attempts, dossier_state, follower_links,
                                  notifications)
from bridge.transitions import load_state
from bridge.model import Unavailable

RESULT_STATUSES = (9, 10)
# Attempts are looked up from this long before the period: the database's clock (commit
# time) and the bridge's (attempt time) may disagree a little.
CLOCK_SLACK_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days, `first` to `last` inclusive, in the centre's time zone."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start_ms(self) -> int:
        return _ms(datetime.combine(self.first, time(), self.zone))

    @property
    def end_ms(self) -> int:  # exclusive
        return _ms(datetime.combine(self.last + timedelta(days=1), time(), self.zone))

    def local(self, epoch_ms: int) -> datetime:
        return datetime.fromtimestamp(epoch_ms / 1000, self.zone)


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """One notification of the period, with what its delivery cost and saved."""

    kind: str
    status: str
    channel: str            # "none" unless sent
    event_ms: int           # the database commit (source.ts_ms), else admission time
    cost_vnd: int
    savings_vnd: int
    sms_equivalent_vnd: int  # what it would have cost by SMS; 0 unless sent
    sent_after_s: float | None  # commit → accepted by the provider; None if unknown/unsent
    # Dead-lettered because no channel reaches the citizen (no phone, no Zalo, SMS off):
    # nothing for an operator to fix, unlike a template or account problem.
    unreachable: bool = False
    # Sent before the ledger kept each notice's SMS equivalent (v6): counted as one SMS.
    one_sms_assumed: bool = False


@dataclass(frozen=True, slots=True)
class DossierResult:
    dossier_key: str
    ready_ms: int
    due: datetime | None
    # An apology (Mẫu 04) is written only for a dossier past its appointment: late, even
    # when the result met the new date the apology gave.
    apologised: bool = False


@dataclass(frozen=True, slots=True)
class Followers:
    total: int
    new_in_period: int


def open_engine(url: str) -> Engine:
    """An engine for reading; ConfigError if the ledger does not exist or is not migrated."""
    parsed = dburl.engine_url(url, "ledger.url")
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).expanduser().exists():
            raise ConfigError(f"no ledger at {path or url!r}: has the bridge run here? "
                              "(set ledger.url in --config or ONESTOP_LEDGER__URL)")
        engine = create_engine(url, connect_args={"timeout": 30})
    else:
        engine = make_engine(url, pool_size=2)
    try:
        version = current_version(engine)
    except Exception:
        engine.dispose()
        raise
    newest = max(m.version for m in discover())
    if 0 < version < newest:
        engine.dispose()
        raise ConfigError(f"the ledger is at schema version {version}, this release reads "
                          f"{newest}: start `onestop-bridge run` once to migrate it (it "
                          "migrates on start), then run the report again")
    if version == 0:
        engine.dispose()
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"the ledger at {shown!r} has no tables yet: has the bridge run?")
    return engine


def notices(engine: Engine, period: Period, sms_price: int) -> Iterator[NoticeRow]:
    n, a = notifications, delivery_attempts
    ok = (select(a.c.idempotency_key, func.min(a.c.at_ms).label("ok_at_ms"),
                 func.max(case((a.c.channel == "sms", 1), else_=0)).label("sms_fired"))
          .where(a.c.result == "ok", a.c.at_ms >= period.start_ms - CLOCK_SLACK_MS)
          .group_by(a.c.idempotency_key).subquery())
    event_ms = func.coalesce(n.c.source_ts_ms, n.c.created_at_ms)
    query = (select(n.c.kind, n.c.status, n.c.channel, n.c.price_vnd, n.c.sms_equivalent_vnd,
                    n.c.error_class, n.c.source_ts_ms, n.c.updated_at_ms,
                    event_ms.label("event_ms"), ok.c.ok_at_ms, ok.c.sms_fired)
             .select_from(n.outerjoin(ok, ok.c.idempotency_key == n.c.idempotency_key))
             .where(event_ms >= period.start_ms, event_ms < period.end_ms)
             .order_by(event_ms, n.c.id))
    with engine.connect() as conn:
        for row in conn.execute(query):
            yield _notice(row, sms_price)


def _notice(row: Any, sms_price: int) -> NoticeRow:
    sent = row.status == SENT
    channel = (row.channel or "none") if sent else "none"
    price = int(row.price_vnd or 0) if sent else 0
    assumed = sent and row.sms_equivalent_vnd is None
    equivalent = sms_equivalent(row.sms_equivalent_vnd, sms_price) if sent else 0
    # Savings only where no SMS fired for this notification (anchors.md §5.2: no double count).
    saved = max(0, equivalent - price) if sent and channel != "sms" and not row.sms_fired else 0
    after: float | None = None
    if sent and row.source_ts_ms is not None:
        accepted = row.ok_at_ms if row.ok_at_ms is not None else row.updated_at_ms
        after = max(0.0, (accepted - row.source_ts_ms) / 1000)
    unreachable = row.status == DEAD and row.error_class == "RecipientError"
    return NoticeRow(row.kind, row.status, channel, int(row.event_ms), price, saved, equivalent,
                     after, unreachable, assumed)


def sms_equivalent(stored: int | None, sms_price: int) -> int:
    """A sent notice's cost had it gone by SMS: as stored when it was sent, else (sent by a
    release before ledger v6 kept it) one SMS at `sms_price`."""
    return sms_price if stored is None else int(stored)


def results(engine: Engine, period: Period) -> list[DossierResult]:
    """Dossiers whose result became ready in the period, with their appointment date.

    The moment of "ready" is the commit of the status change to 9 (the RESULT_READY
    notice), else the dossier's finished_at; the appointment is the dossier's last-known
    due_at, and a dossier that got an apology (Mẫu 04, which moved that date) is late.
    """
    n = notifications
    ready_q = (select(n.c.dossier_key,
                      func.min(func.coalesce(n.c.source_ts_ms, n.c.created_at_ms)))
               .where(n.c.kind == "RESULT_READY").group_by(n.c.dossier_key))
    apologised_q = select(n.c.dossier_key).where(n.c.kind == "APOLOGY_RESCHEDULED").distinct()
    with engine.connect() as conn:
        ready = {key: int(ms) for key, ms in conn.execute(ready_q)}
        apologised = set(conn.execute(apologised_q).scalars())
        # A dossier ready in the period was last written at or after that moment.
        states = conn.execute(select(dossier_state.c.dossier_key, dossier_state.c.state).where(
            dossier_state.c.updated_at_ms >= period.start_ms - CLOCK_SLACK_MS)).all()
    found: list[DossierResult] = []
    for key, state in states:
        dossier = load_state(state)
        if dossier.status not in RESULT_STATUSES:
            continue
        ready_ms = ready.get(key)
        if ready_ms is None and isinstance(dossier.finished_at, datetime):
            ready_ms = _ms(dossier.finished_at)
        if ready_ms is None or not period.start_ms <= ready_ms < period.end_ms:
            continue
        due = dossier.due_at if not isinstance(dossier.due_at, Unavailable) else None
        found.append(DossierResult(key, ready_ms, due, key in apologised))
    return found


def followers(engine: Engine, period: Period) -> Followers:
    f = follower_links
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(f)
                             .where(f.c.linked_at_ms < period.end_ms)).scalar_one()
        new = conn.execute(select(func.count()).select_from(f).where(
            f.c.linked_at_ms >= period.start_ms, f.c.linked_at_ms < period.end_ms)).scalar_one()
    return Followers(int(total), int(new))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
