"""The sandbox's in-memory world: scenario, tokens, followers, quotas, windows, stats.

Everything lives in one event loop, so no locks.  ``reset()`` returns to the state right
after start-up (current scenario kept); ``replace_scenario()`` swaps the rules but keeps
tokens, sent messages, quota used today and followers created by user events.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Literal

from bridge.sandbox.limits import DailyQuota, ObservedRate, SlidingWindow, sms_window, vn_hour
from bridge.sandbox.messages import DEFAULT_MAX_MESSAGES, MessageLog
from bridge.sandbox.scenario import FaultItem, FollowerSpec, Scenario
from bridge.sandbox.tokens import TokenStore

DAY_S = 86400.0
CS_WINDOW_S = 7 * DAY_S  # CS needs an interaction within 7 days (zalo-api.md §6)
WEBHOOK_LOG_MAX = 10_000


@dataclass(slots=True)
class Follower:
    user_id: str
    is_follower: bool
    last_interaction: float  # epoch seconds
    phone: str | None  # shared with the OA (via user_submit_info or the scenario)
    display_name: str


class SandboxState:
    def __init__(
        self,
        scenario: Scenario,
        *,
        pinned: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        max_messages: int = DEFAULT_MAX_MESSAGES,
    ) -> None:
        self.clock = clock
        # Values given on the command line (app id, OA secret, webhook URL) win over any scenario.
        self.pinned = {k: v for k, v in (pinned or {}).items() if v is not None}
        self.scenario = self._pin(scenario)
        self.messages = MessageLog(max_messages)
        self.webhook_log: deque[dict[str, Any]] = deque(maxlen=WEBHOOK_LOG_MAX)
        self.webhook_url_override: str | None = None
        self._init_runtime()

    # -- lifecycle -----------------------------------------------------------------------
    def _pin(self, scenario: Scenario) -> Scenario:
        return scenario.model_copy(update=self.pinned) if self.pinned else scenario

    def _init_runtime(self) -> None:
        sc = self.scenario
        self.tokens = TokenStore(sc.refresh_token, sc.token_ttl_s, self.clock)
        self.followers: dict[str, Follower] = {}
        self._load_followers(sc.followers)
        self.cursors: dict[tuple[str, str, str], int] = {}
        self.quota = DailyQuota(sc.zns_daily_quota)
        self.zalo_window = SlidingWindow(sc.rate_limit_per_minute, 60.0)
        self.observed = ObservedRate(60.0)
        self.sms_window = sms_window(sc.sms_rate_per_second)
        self.requests_per_path: Counter[str] = Counter()
        self.errors_per_code: Counter[str] = Counter()
        self.rate_limit_rejections = 0
        self.sms_rate_rejections = 0
        self.webhook_counts: Counter[str] = Counter()

    def reset(self) -> None:
        self.messages.clear()
        self.webhook_log.clear()
        self.webhook_url_override = None
        self._init_runtime()

    def replace_scenario(self, scenario: Scenario) -> None:
        self.scenario = sc = self._pin(scenario)
        self.cursors.clear()
        self.tokens.ttl_s = sc.token_ttl_s
        self.quota.daily = sc.zns_daily_quota
        self.zalo_window.limit = sc.rate_limit_per_minute
        self.sms_window = sms_window(sc.sms_rate_per_second)
        self._load_followers(sc.followers)

    def _load_followers(self, specs: dict[str, FollowerSpec]) -> None:
        now = self.clock()
        for user_id, spec in specs.items():
            self.followers[user_id] = Follower(
                user_id=user_id,
                is_follower=spec.is_follower,
                last_interaction=now - spec.last_interaction_days_ago * DAY_S,
                phone=spec.phone,
                display_name=spec.display_name,
            )

    # -- queries used by the handlers ------------------------------------------------------
    @property
    def webhook_url(self) -> str | None:
        return self.webhook_url_override or self.scenario.webhook_url

    def next_fault(self, table: Literal["phones", "users"], key: str, channel: str) -> FaultItem | None:
        """The next scripted answer for this recipient and channel, or None (behave normally)."""
        scripts = self.scenario.phones if table == "phones" else self.scenario.users
        script = scripts.get(key)
        if script is None:
            return None
        items: list[FaultItem] = getattr(script, channel)
        cursor = (table, key, channel)
        index = self.cursors.get(cursor, 0)
        if index >= len(items):
            return None
        self.cursors[cursor] = index + 1
        return items[index]

    def follower(self, user_id: str) -> Follower | None:
        """The user as the OA knows them (None: never interacted and not implicit)."""
        known = self.followers.get(user_id)
        if known is None and self.scenario.implicit_followers:
            return Follower(user_id, True, self.clock(), None, "Người dùng Zalo")
        return known

    def touch_user(self, user_id: str) -> Follower:
        """Record an interaction (creating a non-follower entry for a stranger)."""
        known = self.followers.get(user_id)
        if known is None:
            known = Follower(user_id, False, self.clock(), None, "Người dùng Zalo")
            self.followers[user_id] = known
        known.last_interaction = self.clock()
        return known

    def is_night(self) -> bool:
        mode = self.scenario.night_window
        if mode == "off":
            return False
        if mode == "always":
            return True
        hour = vn_hour(self.clock())
        return hour >= 22 or hour < 6

    def count_error(self, code: int | str) -> None:
        self.errors_per_code[str(code)] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "requests_per_path": dict(self.requests_per_path),
            "errors_per_code": dict(self.errors_per_code),
            "max_requests_per_60s": self.observed.max_seen,
            "rate_limit_per_minute": self.zalo_window.limit,
            "rate_limit_rejections": self.rate_limit_rejections,
            "sms_rate_rejections": self.sms_rate_rejections,
            "tokens_issued": self.tokens.issued,
            "messages": dict(self.messages.per_channel),
            "messages_kept": len(self.messages),
            "zns_quota": {"daily": self.quota.daily, "remaining": self.quota.remaining(self.clock())},
            "webhooks": dict(self.webhook_counts),
        }
