"""Time buckets for the charts: hours for a one- or two-day report, days up to a quarter,
months beyond — so a single day is never drawn as one lonely bar."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from bridge.report.fmt import day_short
from bridge.report.summary import Report

HOURLY_MAX_DAYS, DAILY_MAX_DAYS = 2, 92


@dataclass(frozen=True, slots=True)
class Buckets:
    unit: str                                   # "giờ" | "ngày" | "tháng"
    labels: list[str]
    counts: dict[str, list[int]]                # channel → count per bucket
    savings: list[int]


def buckets(r: Report) -> Buckets:
    span = (r.period.last - r.period.first).days + 1
    if span <= HOURLY_MAX_DAYS:
        return _hourly(r, span)
    keys: list[date] = [r.period.first + timedelta(days=i) for i in range(span)]
    if span <= DAILY_MAX_DAYS:
        return _collect(r, "ngày", keys, lambda moment: moment.date(), day_short)
    months = sorted({d.replace(day=1) for d in keys})
    return _collect(r, "tháng", months, lambda moment: moment.date().replace(day=1),
                    lambda d: f"{d.month:02d}/{d.year}")


def _hourly(r: Report, span: int) -> Buckets:
    hours = sorted({h for h, _ in r.by_hour})
    if not hours:
        return Buckets("giờ", [], {}, [])
    first, last = hours[0], hours[-1]
    keys = [first + timedelta(hours=i) for i in range(int((last - first).total_seconds() // 3600) + 1)]
    label = (lambda h: f"{h.hour:02d}h") if span == 1 else (lambda h: f"{day_short(h)} {h.hour:02d}h")
    return _collect(r, "giờ", keys, lambda moment: moment, label)


def _collect(r: Report, unit: str, keys: list[Any], key_of: Callable[[datetime], Hashable],
             label_of: Callable[[Any], str]) -> Buckets:
    index = {k: i for i, k in enumerate(keys)}
    counts: dict[str, list[int]] = {}
    for (hour, channel), n in r.by_hour.items():
        i = index.get(key_of(hour))
        if i is not None:
            counts.setdefault(channel, [0] * len(keys))[i] += n
    savings = [0] * len(keys)
    per: Counter[Hashable] = Counter()
    for hour, v in r.savings_by_hour.items():
        per[key_of(hour)] += v
    for k, v in per.items():
        if k in index:
            savings[index[k]] += v
    return Buckets(unit, [label_of(k) for k in keys], counts, savings)
