"""Rate windows and the daily ZNS quota, cheap enough for the hot path.

A sliding-log window keeps one timestamp per admitted call, so memory is bounded by the
limit itself; pruning is amortised O(1) per call.
"""

from __future__ import annotations

import math
from collections import deque

VN_OFFSET_S = 7 * 3600  # Asia/Ho_Chi_Minh is UTC+7 all year (no DST)


class SlidingWindow:
    """At most ``limit`` admitted calls in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        times = self._times
        while times and times[0] <= horizon:
            times.popleft()

    def admit(self, now: float) -> bool:
        self._prune(now)
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def remaining(self) -> int:
        return max(0, self.limit - len(self._times))

    def retry_after_s(self, now: float) -> int:
        """Whole seconds until the oldest admitted call leaves the window (at least 1)."""
        if not self._times:
            return 1
        return max(1, math.ceil(self._times[0] + self.window_s - now))


class ObservedRate:
    """Counts every call in a trailing window and remembers the highest count seen."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.max_seen = 0

    def record(self, now: float) -> None:
        times = self._times
        times.append(now)
        horizon = now - self.window_s
        while times[0] <= horizon:
            times.popleft()
        if len(times) > self.max_seen:
            self.max_seen = len(times)


def sms_window(rate_per_second: float) -> SlidingWindow:
    """A window for a per-second rate; rates below 1/s become 1 call per 1/rate seconds."""
    if rate_per_second >= 1:
        return SlidingWindow(int(rate_per_second), 1.0)
    return SlidingWindow(1, 1.0 / rate_per_second)


def vn_day(epoch_s: float) -> int:
    return int((epoch_s + VN_OFFSET_S) // 86400)


def vn_hour(epoch_s: float) -> int:
    return int((epoch_s + VN_OFFSET_S) // 3600) % 24


class DailyQuota:
    """ZNS daily quota, reset at midnight Asia/Ho_Chi_Minh."""

    def __init__(self, daily: int) -> None:
        self.daily = daily
        self.used = 0
        self._day = -1

    def _roll(self, now: float) -> None:
        day = vn_day(now)
        if day != self._day:
            self._day = day
            self.used = 0

    def remaining(self, now: float) -> int:
        self._roll(now)
        return max(0, self.daily - self.used)

    def take(self, now: float) -> bool:
        if self.remaining(now) <= 0:
            return False
        self.used += 1
        return True
