"""The local ZNS quota mirror: reads Zalo's number, counts down, defers at zero."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_fakes import FakeClock

from bridge import metrics
from bridge.dispatch.classify import LOCAL_TZ, QUOTA_RECHECK
from bridge.dispatch.quota import QuotaReading, ZnsQuota
from bridge.errors import DeferError, TransportError


class Reader:
    def __init__(self, *readings: QuotaReading | Exception) -> None:
        self.readings = list(readings)
        self.calls = 0

    def __call__(self) -> QuotaReading:
        self.calls += 1
        item = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        if isinstance(item, Exception):
            raise item
        return item


def _quota(reader: Reader, clock: FakeClock, **kw: float) -> ZnsQuota:
    return ZnsQuota(reader, clock=clock.monotonic, wall=clock.wall, **kw)


def test_reads_once_then_counts_down_and_defers_for_15_minutes() -> None:
    clock = FakeClock()
    reader = Reader(QuotaReading(3, 2))
    quota = _quota(reader, clock)
    quota.acquire()
    quota.acquire()
    assert reader.calls == 1 and quota.remaining == 0
    assert metrics.zns_quota_remaining._value.get() == 0
    assert metrics.zns_quota_daily._value.get() == 3
    with pytest.raises(DeferError) as info:
        quota.acquire()
    assert info.value.until - clock.wall() == QUOTA_RECHECK  # or the reset, when sooner
    assert info.value.code == -144


def test_refund_and_server_readings_win() -> None:
    clock = FakeClock()
    quota = _quota(Reader(QuotaReading(10, 5)), clock)
    quota.acquire()
    quota.refund()
    assert quota.remaining == 5
    quota.observe(QuotaReading(10, 2))  # a send response said so
    assert quota.remaining == 2
    quota.exhausted()  # Zalo answered -144
    with pytest.raises(DeferError):
        quota.acquire()


def test_empty_quota_is_rechecked_after_a_minute() -> None:
    clock = FakeClock()
    reader = Reader(QuotaReading(1, 0), QuotaReading(50, 50))  # the OA's quota was raised
    quota = _quota(reader, clock)
    with pytest.raises(DeferError):
        quota.acquire()
    clock.advance(61)
    quota.acquire()
    assert quota.remaining == 49 and reader.calls == 2


def test_periodic_refresh_and_midnight_reset() -> None:
    clock = FakeClock()  # 10:00 local
    reader = Reader(QuotaReading(100, 90), QuotaReading(100, 40), QuotaReading(100, 100))
    quota = _quota(reader, clock, refresh_s=300)
    quota.acquire()
    clock.advance(301)
    quota.acquire()
    assert quota.remaining == 39
    # Past local midnight the count is re-read even though the last read is fresh.
    midnight = (clock.wall().astimezone(LOCAL_TZ) + timedelta(days=1)).replace(hour=0, minute=0)
    clock.advance((midnight - clock.wall()).total_seconds() + 1)
    quota.refresh_s = 10**9
    quota.acquire()
    assert quota.remaining == 99 and reader.calls == 3


def test_unreadable_quota_lets_zalo_decide() -> None:
    clock = FakeClock()
    reader = Reader(TransportError("down"))
    quota = _quota(reader, clock)
    for _ in range(5):
        quota.acquire()  # no local number: no local refusal
    assert reader.calls == 1  # and no hammering of a failing endpoint
