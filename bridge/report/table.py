"""CSV: one row per day × channel × kind, plain integers (VND) for spreadsheets."""

from __future__ import annotations

import csv
import io

from bridge.report.fmt import CHANNEL_ORDER, KIND_ORDER
from bridge.report.summary import Report

COLUMNS = ("date", "channel", "kind", "notifications", "sent", "cost_vnd", "sms_savings_vnd",
           "sms_equivalent_vnd")


def render(r: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for (d, channel, kind), cell in sorted(r.cells.items(), key=_order):
        writer.writerow([d.isoformat(), channel, kind, cell.notifications, cell.sent,
                         cell.cost_vnd, cell.savings_vnd, cell.sms_equivalent_vnd])
    return out.getvalue()


def _order(item: tuple[tuple[object, str, str], object]) -> tuple[object, int, int, str, str]:
    (d, channel, kind), _ = item
    c = CHANNEL_ORDER.index(channel) if channel in CHANNEL_ORDER else len(CHANNEL_ORDER)
    k = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (d, c, k, channel, kind)
