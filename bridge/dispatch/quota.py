"""The ZNS daily quota, mirrored locally so we stop before Zalo answers -144.

Zalo's number is the truth: it is read from `GET /message/quota` at start and every
`refresh_s`, and every successful send reports `quota.remainingQuota`. Between those
readings each reservation decrements the local copy; a send Zalo refused without charging
gives its unit back. At local midnight the quota resets, so the copy is re-read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from bridge import metrics
from bridge.dispatch.classify import next_local_midnight, quota_back
from bridge.errors import BridgeError, QuotaExhausted

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuotaReading:
    daily: int | None
    remaining: int | None


Fetch = Callable[[], QuotaReading]


class ZnsQuota:
    """Thread-safe local mirror of the ZNS daily quota."""

    def __init__(self, fetch: Fetch, *, refresh_s: float = 300.0, recheck_empty_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._fetch = fetch
        self.refresh_s = refresh_s
        self.recheck_empty_s = recheck_empty_s
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self.daily: int | None = None
        self.remaining: int | None = None
        self._read_at: float | None = None   # monotonic time of the last server reading
        self._resets_at: datetime | None = None  # local midnight after that reading

    def acquire(self) -> None:
        """Reserve one message of today's quota or raise QuotaExhausted (`quota_back`)."""
        self._maybe_refresh()
        with self._lock:
            if self.remaining is None:
                return  # unknown: let Zalo decide (-144 is classified as a deferral too)
            if self.remaining <= 0:
                until = quota_back(self._wall())
                raise QuotaExhausted("ZNS daily quota used up (local count)", until=until, code=-144)
            self.remaining -= 1
            metrics.zns_quota_remaining.set(self.remaining)

    def refund(self) -> None:
        """Zalo refused the send before charging it (any error answer)."""
        with self._lock:
            if self.remaining is not None:
                self.remaining += 1
                metrics.zns_quota_remaining.set(self.remaining)

    def observe(self, reading: QuotaReading) -> None:
        """A reading from a send response or the quota endpoint; the server wins."""
        with self._lock:
            self._apply(reading)

    def exhausted(self) -> None:
        """Zalo answered -144: trust it until the next reading."""
        with self._lock:
            self.remaining = 0
            metrics.zns_quota_remaining.set(0)

    def refresh(self) -> None:
        """Read the quota from Zalo now (blocking); a failure keeps the local copy."""
        with self._fetch_lock:
            self._fetch_and_apply()

    def _fetch_and_apply(self) -> None:
        try:
            reading = self._fetch()
        except BridgeError as exc:
            log.warning("ZNS quota read failed", extra={"error": exc.error_class,
                                                        "detail": exc.message})
            with self._lock:
                self._read_at = self._clock()  # do not hammer a failing endpoint
                if self._resets_at is not None and self._wall() >= self._resets_at:
                    # Yesterday's count is meaningless now; let Zalo decide until a reading.
                    self.remaining = None
                    self._resets_at = next_local_midnight(self._wall())
            return
        with self._lock:
            self._apply(reading)

    def _apply(self, reading: QuotaReading) -> None:
        if reading.daily is not None:
            self.daily = reading.daily
            metrics.zns_quota_daily.set(reading.daily)
        if reading.remaining is not None:
            self.remaining = reading.remaining
            metrics.zns_quota_remaining.set(reading.remaining)
        self._read_at = self._clock()
        self._resets_at = next_local_midnight(self._wall())

    def _is_stale(self) -> bool:
        now = self._clock()
        if self._read_at is None:
            return True
        age = now - self._read_at
        if age >= self.refresh_s:
            return True
        if self._resets_at is not None and self._wall() >= self._resets_at:
            return True
        empty = self.remaining is not None and self.remaining <= 0
        return empty and age >= self.recheck_empty_s

    def _maybe_refresh(self) -> None:
        with self._lock:
            if not self._is_stale():
                return
            seen = self._read_at
        # Single flight: whoever holds the fetch lock reads for everyone; the others go on
        # with the local copy instead of queueing behind an HTTP call.
        if not self._fetch_lock.acquire(blocking=False):
            return
        try:
            with self._lock:
                if self._read_at != seen:
                    return
            self._fetch_and_apply()
        finally:
            self._fetch_lock.release()
