"""The OA's answers to a citizen ride out Zalo's per-minute limit instead of being dropped."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.citizen.messages import text
from bridge.citizen.replies import Replier
from bridge.errors import DeferError

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Waits(threading.Event):
    """A stop event that is never set and records the waits instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout or 0.0)
        return False


class RateLimitedOnce:
    def __init__(self) -> None:
        self.calls = 0

    def send_oa_message(self, user_id: str, message: dict[str, Any], *,
                        tracking: str | None = None) -> str:
        self.calls += 1
        if self.calls == 1:  # what classify makes of -32: come back in a minute
            raise DeferError("app rate limit", until=NOW + timedelta(seconds=60), code=-32)
        return "msg-1"


class Store:
    def __init__(self) -> None:
        self.replies: list[tuple[str, str, str]] = []

    def record_reply(self, message_id: str, user_id: str, purpose: str) -> None:
        self.replies.append((message_id, user_id, purpose))


def test_a_reply_waits_out_the_per_minute_limit_and_is_sent() -> None:
    waits, store = Waits(), Store()
    replier = Replier(RateLimitedOnce(), store, stopping=waits, wall=lambda: NOW)  # type: ignore[arg-type]
    assert replier.reply("u-1", text("Chào mừng"), "welcome") == "msg-1"
    assert waits.waited == [60.0]
    assert store.replies == [("msg-1", "u-1", "welcome")]
