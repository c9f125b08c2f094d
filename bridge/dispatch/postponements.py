"""Logging postponed deliveries per episode, not per notice.

A rate-limit minute (-32), the night window or a used-up quota postpones every notice that
comes along: one WARNING each was hundreds of lines a minute (347 in a soak's two limited
minutes), most of what the runbook's first log check showed. An episode is a channel
postponing deliveries until it delivers one again: its first postponement is a WARNING, the
rest DEBUG, a WARNING reminder every `remind_s` while it lasts (how many so far, which
codes), and an INFO line when the channel delivers again. Per-notice detail stays in the
ledger's attempts and in `onestop_delivery_attempts_total`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Episode:
    started: float
    reminded: float
    codes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return ", ".join(f"{code} ×{n}" for code, n in self.codes.most_common())


class Postponements:
    """Thread-safe: every worker thread reports to one instance."""

    def __init__(self, clock: Callable[[], float], remind_s: float = 300.0) -> None:
        self._clock = clock
        self._remind_s = remind_s
        self._open: dict[str, _Episode] = {}
        self._lock = threading.Lock()

    def postponed(self, channel: str, code: int | str | None, error: str,
                  ctx: dict[str, Any]) -> None:
        now = self._clock()
        with self._lock:
            episode = self._open.get(channel)
            first = episode is None
            if episode is None:
                episode = self._open[channel] = _Episode(started=now, reminded=now)
            episode.codes[str(code)] += 1
            remind = not first and now - episode.reminded >= self._remind_s
            if remind:
                episode.reminded = now
            count, summary = sum(episode.codes.values()), episode.summary()
        extra = {**ctx, "channel": channel, "code": code, "error": error}
        if first:
            log.warning("deliveries postponed on this channel; further postponements are logged "
                        "at DEBUG until it delivers again", extra=extra)
        elif remind:
            log.warning("channel still postponing deliveries", extra={
                "channel": channel, "postponed": count, "codes": summary,
                "for_s": round(now - episode.started)})
        else:
            log.debug("delivery postponed", extra=extra)

    def delivered(self, channel: str) -> None:
        if channel not in self._open:  # unlocked peek: the common case costs nothing
            return
        with self._lock:
            episode = self._open.pop(channel, None)
        if episode is not None:
            log.info("channel delivering again", extra={
                "channel": channel, "postponed": sum(episode.codes.values()),
                "codes": episode.summary(), "for_s": round(self._clock() - episode.started)})
