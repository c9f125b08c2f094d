"""Send the OA's answers to a citizen through the dispatcher (same token manager and limiter).

A reply that cannot be sent is logged and dropped: the citizen can ask again, and one
citizen's failed reply must not hold up the others. Rate-limit deferrals and transport
errors get a bounded second chance first: long enough to wait out Zalo's per-minute limit
(-32 defers a minute), which dropped every welcome and lookup answer of that minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from bridge.citizen.messages import Message
from bridge.citizen.store import CitizenStore
from bridge.errors import BridgeError, DeferError, RetryableError

log = logging.getLogger(__name__)


class OaSender(Protocol):
    def send_oa_message(self, user_id: str, message: dict[str, Any], *,
                        tracking: str | None = None) -> str: ...


class Replier:
    def __init__(self, sender: OaSender, store: CitizenStore, *, max_wait_s: float = 150.0,
                 attempts: int = 3, stopping: threading.Event | None = None,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.sender = sender
        self.store = store
        self.max_wait_s = max_wait_s
        self.attempts = attempts
        self.stopping = stopping or threading.Event()
        self._wall = wall

    def send(self, user_id: str, message: Message, purpose: str) -> str:
        """Send or raise the last BridgeError (for callers that report outcomes)."""
        deadline = time.monotonic() + self.max_wait_s
        for attempt in range(1, self.attempts + 1):
            try:
                message_id = self.sender.send_oa_message(user_id, message)
            except RetryableError as exc:
                wait = self._wait_for(exc, attempt)
                if attempt == self.attempts or time.monotonic() + wait > deadline:
                    raise
                if self.stopping.wait(wait):
                    raise
                continue
            self.store.record_reply(message_id, user_id, purpose)
            return message_id
        raise AssertionError("unreachable")

    def reply(self, user_id: str, message: Message, purpose: str) -> str | None:
        """Send; on failure log (no personal data) and return None."""
        try:
            return self.send(user_id, message, purpose)
        except BridgeError as exc:
            log.warning("reply to citizen not sent", extra={
                "purpose": purpose, "error_class": exc.error_class, "code": exc.code,
                "error": exc.message})
            return None

    def _wait_for(self, exc: RetryableError, attempt: int) -> float:
        if isinstance(exc, DeferError):
            return max(0.05, (exc.until - self._wall()).total_seconds())
        return min(2.0, 0.2 * 2 ** (attempt - 1))
