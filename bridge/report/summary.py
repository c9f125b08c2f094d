"""The management figures, computed once from the ledger rows and shared by every format."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from bridge.ledger.tables import DEAD, SENT
from bridge.report.ledger_view import DossierResult, Followers, NoticeRow, Period

ZALO_CHANNELS = ("zalo_oa", "zns")
FAST_S, MINUTE_S = 5.0, 60.0


@dataclass(slots=True)
class Cell:
    """One day × channel × kind."""

    notifications: int = 0
    sent: int = 0
    cost_vnd: int = 0
    savings_vnd: int = 0
    sms_equivalent_vnd: int = 0


@dataclass(slots=True)
class Report:
    period: Period
    sms_price: int
    total: int = 0
    sent: int = 0
    dead: int = 0
    unreachable: int = 0      # of `dead`: no channel reaches the citizen (no phone, no Zalo)
    cost_vnd: int = 0
    savings_vnd: int = 0
    sms_equivalent_vnd: int = 0  # what the delivered notifications would have cost by SMS
    one_sms_assumed: int = 0  # … of which counted as one SMS (sent before the ledger kept it)
    timed: int = 0            # sent notifications whose commit time is known
    within_fast: int = 0      # … accepted by the provider within 5 s of the commit
    within_minute: int = 0
    cells: dict[tuple[date, str, str], Cell] = field(default_factory=dict)
    by_hour: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    savings_by_hour: Counter[datetime] = field(default_factory=Counter)
    results_ready: int = 0
    results_on_time: int = 0
    results_without_due: int = 0
    apologies: int = 0
    followers: Followers = Followers(0, 0)

    # --- derived --------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return self.total - self.sent - self.dead

    def sent_by_channel(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, channel, _), cell in self.cells.items():
            if cell.sent:
                out[channel] += cell.sent
        return dict(out)

    @property
    def zalo_sent(self) -> int:
        by = self.sent_by_channel()
        return sum(by.get(c, 0) for c in ZALO_CHANNELS)

    def by_kind_channel(self) -> dict[tuple[str, str], int]:
        out: Counter[tuple[str, str]] = Counter()
        for (_, channel, kind), cell in self.cells.items():
            out[(kind, channel)] += cell.notifications
        return dict(out)

    def cost_by_channel(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, channel, _), cell in self.cells.items():
            out[channel] += cell.cost_vnd
        return dict(out)

    def days(self) -> list[date]:
        return sorted({d for d, _, _ in self.cells})

    def daily(self) -> dict[date, dict[str, Cell]]:
        """day → channel → totals over kinds."""
        out: dict[date, dict[str, Cell]] = defaultdict(dict)
        for (d, channel, _), cell in self.cells.items():
            acc = out[d].setdefault(channel, Cell())
            acc.notifications += cell.notifications
            acc.sent += cell.sent
            acc.cost_vnd += cell.cost_vnd
            acc.savings_vnd += cell.savings_vnd
            acc.sms_equivalent_vnd += cell.sms_equivalent_vnd
        return dict(sorted(out.items()))


def build(period: Period, sms_price: int, notices: Iterable[NoticeRow],
          results: Iterable[DossierResult], followers: Followers) -> Report:
    report = Report(period, sms_price, followers=followers)
    for row in notices:
        _add(report, row)
    for result in results:
        _add_result(report, result)
    return report


def _add(report: Report, row: NoticeRow) -> None:
    moment = report.period.local(row.event_ms)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    cell = report.cells.setdefault((moment.date(), row.channel, row.kind), Cell())
    cell.notifications += 1
    report.total += 1
    report.by_hour[(hour, row.channel)] += 1
    if row.kind == "APOLOGY_RESCHEDULED":
        report.apologies += 1
    if row.status == DEAD:
        report.dead += 1
        report.unreachable += row.unreachable
    if row.status != SENT:
        return
    report.sent += 1
    cell.sent += 1
    cell.cost_vnd += row.cost_vnd
    cell.savings_vnd += row.savings_vnd
    cell.sms_equivalent_vnd += row.sms_equivalent_vnd
    report.cost_vnd += row.cost_vnd
    report.savings_vnd += row.savings_vnd
    report.sms_equivalent_vnd += row.sms_equivalent_vnd
    report.one_sms_assumed += row.one_sms_assumed
    report.savings_by_hour[hour] += row.savings_vnd
    if row.sent_after_s is not None:
        report.timed += 1
        report.within_fast += row.sent_after_s <= FAST_S
        report.within_minute += row.sent_after_s <= MINUTE_S


def _add_result(report: Report, result: DossierResult) -> None:
    report.results_ready += 1
    if result.apologised:
        return  # late by its first appointment, whatever date the apology gave
    if result.due is None:
        report.results_without_due += 1
        return
    # "Ngày hẹn trả" is a date: ready any time on the appointment day is on time.
    ready_day = report.period.local(result.ready_ms).date()
    if ready_day <= result.due.astimezone(report.period.zone).date():
        report.results_on_time += 1
