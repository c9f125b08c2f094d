"""The retry policy, kept apart from the channels (in the spirit of dramatiq's Retries
middleware): which errors are retried in-process, how long to wait, when to give up.

- TransportError / ProviderBusy: up to `dispatch.attempts` tries, jittered exponential
  backoff from `backoff_initial_s` capped at `backoff_max_s`.
- DeferError: retried in-process only when its `until` is no further away than
  `backoff_max_s` (an SMS 429 with Retry-After: 1); otherwise it goes straight up to the
  caller, which parks the message until `until` instead of blocking a worker.
- Everything else (AuthError after its one refresh, PermanentError) is not retried here.

When the budget is spent the last RetryableError is re-raised unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

import tenacity

from bridge.errors import DeferError, RetryableError
from bridge.settings import DispatchSettings

T = TypeVar("T")


class RetryPolicy:
    def __init__(self, cfg: DispatchSettings, *, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.attempts = max(1, cfg.attempts)
        self.max_backoff_s = cfg.backoff_max_s
        self._sleep, self._wall = sleep, wall
        self.initial_s = cfg.backoff_initial_s

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, DeferError):
            return self._defer_s(exc) <= self.max_backoff_s
        return isinstance(exc, RetryableError)

    def _defer_s(self, exc: DeferError) -> float:
        return max(0.0, (exc.until - self._wall()).total_seconds())

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DeferError):
            return self._defer_s(exc)
        return self.backoff_s(state.attempt_number)

    def backoff_s(self, attempt: int) -> float:
        """Exponential from `initial_s`, plus up to one `initial_s` of jitter, capped."""
        base = self.initial_s * 2 ** (attempt - 1)
        return min(self.max_backoff_s, base + random.uniform(0, self.initial_s))

    def run(self, fn: Callable[[], T]) -> T:
        # Fast path: most calls succeed first time, and building a tenacity loop costs
        # ~40 µs. Only a retryable failure enters it; its first attempt replays that failure
        # (without calling `fn` again), so waits and attempt numbers are tenacity's own.
        try:
            return fn()
        except Exception as exc:
            if self.attempts <= 1 or not self.should_retry(exc):
                raise
            first: list[Exception] = [exc]

        def attempt() -> T:
            if first:
                raise first.pop()
            return fn()

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self.should_retry),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)
