"""Fill a ledger the way the bridge does, with the real pieces, on the sample day's timeline.

The sample day (bridge/samples.py) goes through the real pipeline (Debezium value →
decode → transition → render), the real ledger (admission, then record_sent /
record_unsent as bridge/consume/settle.py does) and the real dispatcher against the
in-process Zalo/SMS sandbox. Only the clock is shifted: each change is handled "at" its
commit time on the sample day, plus the real time the bridge took to handle it, so the
report's per-hour charts and its "within 5 s" figure describe a genuine run.

    python tests/observability/ledger_fill.py /tmp/ledger.db   # for the screenshot
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bridge.dispatch import MemoryTokenStore, sandbox_settings
from bridge.dispatch.channels import SmsChannel, ZaloChannels
from bridge.dispatch.classify import parse_hhmm
from bridge.dispatch.dispatcher import Dispatcher
from bridge.dispatch.http import make_client
from bridge.dispatch.ratelimit import RateLimiter
from bridge.dispatch.retry import RetryPolicy
from bridge.dispatch.sms import SmsClient
from bridge.dispatch.tokens import TokenManager
from bridge.dispatch.zalo import ZaloClient
from bridge.errors import DeferError, RetryableError
from bridge.ledger import Incoming, Ledger, LedgerFollowers
from bridge.ledger.tables import DEAD, DEFERRED, FAILED
from bridge.phone import normalise_phone
from bridge.pipeline import Pipeline
from bridge.samples import DayPlan, day_of_changes, debezium_value
from bridge.sandbox import run_in_thread
from bridge.settings import Settings

FOLLOWER_SHARE = 0.45       # citizens who scanned the OA's QR code at the counter
TRANSIENT_SHARE = 0.05      # numbers whose first ZNS call meets a Zalo hiccup (-100)


class SimClock:
    """Epoch seconds: an anchor on the sample day plus the real time elapsed since."""

    def __init__(self) -> None:
        self._anchor = time.time()
        self._since = time.monotonic()

    def at(self, moment: datetime) -> None:
        self._anchor = moment.timestamp()
        self._since = time.monotonic()

    def __call__(self) -> float:
        return self._anchor + (time.monotonic() - self._since)

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)


@dataclass
class FillResult:
    changes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    followers: dict[str, str] = field(default_factory=dict)   # phone → user id
    no_zalo: set[str] = field(default_factory=set)


def build_dispatcher(settings: Settings, followers: Any, wall: Callable[[], datetime]) -> Dispatcher:
    """bridge.dispatch.build_dispatcher, with the dispatcher's wall clock injected."""
    zcfg, dcfg = settings.zalo, settings.dispatch
    client = make_client(timeout_s=zcfg.timeout_s, max_connections=4)
    zalo_client = ZaloClient(zcfg, client, night_end=parse_hhmm(dcfg.night_end))
    tokens = TokenManager(MemoryTokenStore(), zalo_client.refresh,
                          initial_refresh_token=zcfg.refresh_token.get_secret_value(),
                          refresh_ahead_s=zcfg.refresh_ahead_s)
    zalo = ZaloChannels(zalo_client, tokens,
                        RateLimiter.per_minute("zalo_app", zcfg.oa_rate_per_minute))
    sms = SmsChannel(SmsClient(settings.sms, client),
                     RateLimiter.per_second("sms", settings.sms.rate_per_second))
    return Dispatcher(settings, zalo, sms, followers=followers,
                      retry=RetryPolicy(dcfg, wall=wall), wall=wall, on_close=client.close)


def _phones(plan: DayPlan) -> set[str]:
    return {p for c in day_of_changes(plan) if (p := normalise_phone(c.row.get("applicant_phone")))}


def plan_citizens(plan: DayPlan, seed: int) -> tuple[dict[str, str], set[str]]:
    rng = random.Random(seed)
    followers: dict[str, str] = {}
    no_zalo: set[str] = set()
    for phone in sorted(_phones(plan)):
        draw = rng.random()
        if draw < plan.phones_without_zalo:
            no_zalo.add(phone)
        elif draw < plan.phones_without_zalo + FOLLOWER_SHARE:
            followers[phone] = f"zu{phone[-7:]}"
    return followers, no_zalo


def scenario(followers: dict[str, str], no_zalo: set[str], seed: int,
             night_phones: Collection[str] = frozenset()) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    phones: dict[str, Any] = {p: {"has_zalo": False} for p in no_zalo}
    for phone in followers:
        if rng.random() < TRANSIENT_SHARE:
            phones[phone] = {"zns": [-100]}
    for phone in night_phones:  # ZNS night ban (-133): the notice waits for the morning
        phones[phone] = {"zns": [-133] * 20}
    return {"phones": phones, "delivery_webhooks": False,
            "followers": {uid: {"phone": p} for p, uid in followers.items()}}


def fill(ledger_url: str, sandbox_url: str, plan: DayPlan, *, seed: int = 7,
         deferred_phones: int = 0) -> FillResult:
    """Run `plan` through the bridge's pieces into the ledger at `ledger_url`.

    `deferred_phones` citizens without a follower link meet ZNS's night ban, so their
    notices stay `deferred` (waiting in the retry topic) — the report's "waiting" line.
    """
    settings = sandbox_settings(Settings(
        dispatch={"backoff_initial_s": 0.01, "backoff_max_s": 0.05}), sandbox_url)
    follower_map, no_zalo = plan_citizens(plan, seed)
    night = set(sorted(_phones(plan) - set(follower_map) - no_zalo)[:deferred_phones])
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        http.put("/sandbox/scenario",
                 json=scenario(follower_map, no_zalo, seed, night)).raise_for_status()
        http.post("/sandbox/reset").raise_for_status()
    clock = SimClock()
    ledger = Ledger.open(ledger_url, clock=clock)
    links = LedgerFollowers(ledger.engine, clock=clock)
    dispatcher = build_dispatcher(settings, links, clock.wall)
    pipeline = Pipeline(settings)
    result = FillResult(followers=follower_map, no_zalo=no_zalo)
    linked: set[str] = set()
    try:
        for n, change in enumerate(day_of_changes(plan)):
            phone = normalise_phone(change.row.get("applicant_phone"))
            if phone in follower_map and phone not in linked:
                clock.at(change.at - timedelta(minutes=2))   # scanned the QR at the counter
                links.link(follower_map[phone], phone)
                linked.add(phone)
            clock.at(change.at)
            _handle(ledger, dispatcher, pipeline, debezium_value(change, 24_000_000 + 512 * n, 700 + n),
                    result)
            result.changes += 1
    finally:
        dispatcher.close()
        ledger.close()
    return result


def _handle(ledger: Ledger, dispatcher: Dispatcher, pipeline: Pipeline, value: dict[str, Any],
            result: FillResult) -> None:
    event = pipeline.decode(json.dumps(value))
    assert event is not None
    [admission] = ledger.admit([Incoming(event, pipeline.event_id(event),
                                         pipeline.dossier_key(event))], pipeline.notify)
    for stored in admission.to_send:
        status = _settle(ledger, dispatcher, stored)
        result.outcomes[status] = result.outcomes.get(status, 0) + 1


def _settle(ledger: Ledger, dispatcher: Dispatcher, stored: Any) -> str:
    """What bridge/consume/settle.py records for each outcome (Kafka side left out)."""
    key = stored.key
    try:
        outcome = dispatcher.deliver(stored.notification)
    except DeferError as exc:
        ledger.record_unsent(key, DEFERRED, error_class=exc.error_class, error_message=exc.message,
                             attempts=getattr(exc, "attempts", []))
        return DEFERRED
    except RetryableError as exc:
        ledger.record_unsent(key, FAILED, error_class=exc.error_class, error_message=exc.message,
                             attempts=getattr(exc, "attempts", []), count_round=True)
        return FAILED
    except Exception as exc:  # RecipientError, PermanentError: the DLQ
        ledger.record_unsent(key, DEAD, error_class=type(exc).__name__, error_message=str(exc),
                             attempts=getattr(exc, "attempts", []))
        return DEAD
    if outcome.status == "sent":
        ledger.record_sent(key, outcome)
        return "sent"
    ledger.record_unsent(key, DEAD, error_class="RecipientError",
                         error_message=outcome.reason or "every channel refused",
                         attempts=outcome.attempts)
    return DEAD


def main(argv: list[str]) -> int:
    target = Path(argv[0]).resolve()
    target.unlink(missing_ok=True)
    handle = run_in_thread(scenario={})
    try:
        outcome = fill(f"sqlite:///{target}", handle.url, DayPlan())
    finally:
        handle.stop()
    print(json.dumps({"changes": outcome.changes, "outcomes": outcome.outcomes,
                      "followers": len(outcome.followers), "no_zalo": len(outcome.no_zalo)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
