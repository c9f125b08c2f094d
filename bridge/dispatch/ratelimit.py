"""One limiter per upstream quota: a sliding-window pacer for request rates, a counter for
the ZNS daily quota.

`SlidingWindow` is the arithmetic: it hands out *slots* (monotonic times) such that no
window of `window_s` seconds ever holds more than `limit` slots. It remembers only the last
`limit` slots: the next slot is `max(now, slots[-limit] + window_s)`. Unlike a token bucket
or GCRA with burst, it cannot put `limit + burst` requests into one server-side minute.

`RateLimiter` wraps it for threads: reserve a slot under a lock, sleep outside it, and
raise DeferError instead of sleeping past `max_wait_s` (the consumer then parks the
message rather than blocking a worker for minutes).

Safety margin against the server's view: a request reserved at t reaches the server at
t + d (0 ≤ d ≤ a few ms on a healthy network, more when threads queue for the GIL). Pacing
against a window of 60 s + `margin_s` and a count of N − `margin_count` keeps the server's
count within N for any 60-second window as long as d varies by less than `margin_s`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from bridge import metrics
from bridge.errors import DeferError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def _wall_now() -> datetime:
    return datetime.now(timezone.utc)


class SlidingWindow:
    """Pure slot arithmetic; not thread-safe (RateLimiter holds the lock)."""

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be ≥ 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._slots: deque[float] = deque(maxlen=limit)

    def next_slot(self, now: float) -> float:
        """When the next request may go, without reserving it."""
        if len(self._slots) < self.limit:
            return now
        return max(now, self._slots[0] + self.window_s)

    def reserve(self, now: float) -> float:
        slot = self.next_slot(now)
        self._slots.append(slot)  # maxlen drops the oldest, which no longer matters
        return slot

    def count_in(self, start: float, end: float) -> int:
        """Reserved slots inside [start, end) (for tests and metrics)."""
        return sum(1 for s in self._slots if start <= s < end)


class RateLimiter:
    """A blocking, bounded-wait limiter shared by every worker thread."""

    def __init__(self, name: str, limit: int | None, window_s: float, *,
                 max_wait_s: float = 10.0, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep, wall: Callable[[], datetime] = _wall_now) -> None:
        self.name = name
        # limit None or ≤ 0 means "no limit" (benchmarks with limits lifted).
        self._window = SlidingWindow(limit, window_s) if limit and limit > 0 else None
        self.max_wait_s = max_wait_s
        self._clock, self._sleep, self._wall = clock, sleep, wall
        self._lock = threading.Lock()
        self._wait_metric = metrics.rate_limit_wait.labels(limiter=name)

    @classmethod
    def per_minute(cls, name: str, per_minute: int | None, *, margin_s: float = 1.0,
                   margin_ratio: float = 0.02, **kw: object) -> RateLimiter:
        """An upstream "N requests per minute" limit, with the safety margin applied."""
        if not per_minute or per_minute <= 0:
            return cls(name, None, 60.0, **kw)  # type: ignore[arg-type]
        limit = per_minute - max(1, math.ceil(per_minute * margin_ratio)) if per_minute > 1 else 1
        return cls(name, limit, 60.0 + margin_s, **kw)  # type: ignore[arg-type]

    @classmethod
    def per_second(cls, name: str, rate: float | None, **kw: object) -> RateLimiter:
        """A "rate per second" limit (may be fractional: 0.5 → 1 per 2 s)."""
        if not rate or rate <= 0:
            return cls(name, None, 1.0, **kw)  # type: ignore[arg-type]
        limit = max(1, int(rate))
        return cls(name, limit, limit / rate, **kw)  # type: ignore[arg-type]

    @property
    def limit(self) -> int | None:
        return self._window.limit if self._window else None

    @property
    def window_s(self) -> float | None:
        return self._window.window_s if self._window else None

    def acquire(self) -> float:
        """Block until a permit is ours; return the seconds waited.

        Raises DeferError (reserving nothing) when the wait would exceed `max_wait_s`.
        """
        if self._window is None:
            self._wait_metric.observe(0.0)
            return 0.0
        with self._lock:
            now = self._clock()
            wait = self._window.next_slot(now) - now
            if wait > self.max_wait_s:
                raise DeferError(f"{self.name} rate limit: next permit in {wait:.1f}s",
                                 until=self._wall() + timedelta(seconds=wait))
            self._window.reserve(now)
        if wait > 0:
            self._sleep(wait)
        self._wait_metric.observe(max(wait, 0.0))
        return max(wait, 0.0)
