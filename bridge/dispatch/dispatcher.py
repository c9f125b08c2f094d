"""Deliver one notification: OA → ZNS → SMS, cheapest channel that can reach the citizen.

Per channel the answer decides what happens next:

- success                    → DeliveryOutcome(status="sent"), metrics, done;
- RecipientError, BadInputError, ConfigError, AuthError (after its one refresh)
                             → this channel cannot carry this notification: next channel
                               (ConfigError is also logged as an error: a person must act);
- TransportError/ProviderBusy → retried by RetryPolicy; when the budget is spent the error
                               goes up to the caller (→ delayed retry topic);
- DeferError (rate limit, daily quota, night window) → up to the caller, which parks the
  message until `until`. In particular ZNS's night ban (-133) never falls through to SMS.
  A used-up daily quota (QuotaExhausted) does, with `dispatch.quota_fallback` on; if no
  later channel takes the notice, it waits for the reset all the same.

Every channel refused permanently → DeliveryOutcome(status="failed") (→ DLQ).
No phone and no linked follower → RecipientError before any call.

Errors raised to the caller carry `.attempts` (list[Attempt]) for the ledger.
Thread-safe: one Dispatcher serves all worker threads.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from bridge import metrics
from bridge.citizen.messages import notice
from bridge.dispatch.channels import SmsChannel, ZaloChannels
from bridge.dispatch.outcome import Attempt, DeliveryOutcome, Sent, result_of
from bridge.dispatch.postponements import Postponements
from bridge.dispatch.retry import RetryPolicy
from bridge.errors import (
    AuthError, BridgeError, ConfigError, DeferError, PermanentError, QuotaExhausted,
    RecipientError, RetryableError,
)
from bridge.model import Notification
from bridge.phone import mask_phone
from bridge.settings import Settings
from bridge.templates.sms import sms_parts, sms_text, without_zalo_link

log = logging.getLogger(__name__)
@lru_cache(maxsize=512)
def _child(metric: Any, *labels: str) -> Any:
    """A metric's labelled child, cached: `labels()` costs µs on every delivery otherwise."""
    return metric.labels(*labels)


# One send on one channel; gets a callback to record a refused token before the refresh.
Send = Callable[[Callable[[AuthError], None]], Sent]
# A channel of a notice's plan, how to send on it, and what a send there costs (VND) unless
# the provider says otherwise.
Step = tuple[str, Send, int]


class FollowerLookup(Protocol):
    def user_for_phone(self, phone: str) -> str | None: ...


# Not a notice kind: the code that proves a follower owns the number they share.
LINK_CODE = "LINK_CODE"


def zns_template_id(settings: Settings, kind: str) -> str:
    return settings.zalo.zns_templates.get(kind) or "onestop-" + kind.lower()


class Dispatcher:
    def __init__(self, settings: Settings, zalo: ZaloChannels, sms: SmsChannel, *,
                 followers: FollowerLookup | None = None, retry: RetryPolicy | None = None,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 on_close: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.zalo = zalo
        self.sms = sms
        self.followers = followers
        self.retry = retry or RetryPolicy(settings.dispatch, wall=wall)
        self._wall = wall
        self._on_close = on_close
        self.postponements = Postponements(lambda: wall().timestamp())
        self.prices = {"zalo_oa": settings.prices.zalo_oa, "zns": settings.prices.zns,
                       "sms": settings.prices.sms}

    # --- public -------------------------------------------------------------------------
    def deliver(self, n: Notification) -> DeliveryOutcome:
        ctx = {"dossier_code": n.dossier_code, "idempotency_key": n.idempotency_key,
               "kind": n.kind, "phone": mask_phone(n.phone)}
        sms = sms_text(n)
        # What this notice costs by SMS (gateways bill each part): the all-SMS baseline.
        sms_cost = sms_parts(sms) * self.prices["sms"]
        plan = self._plan(n, ctx, sms, sms_cost)
        if not plan:
            _child(metrics.notifications, n.kind, "none", "failed").inc()
            # INFO: routine (no phone typed at the desk); an alert watches the share.
            log.info("no reachable recipient", extra=ctx)
            # "No phone" is also what the desk typed that is no Vietnamese mobile number.
            raise RecipientError("no reachable recipient: no valid mobile number (none typed, or "
                                 "not a Vietnamese mobile number) and no linked Zalo follower")
        attempts: list[Attempt] = []
        exhausted: tuple[str, QuotaExhausted] | None = None  # waited for if nothing else works
        for channel, send, price in plan:
            try:
                sent = self.retry.run(lambda: self._attempt(channel, send, attempts, price))
            except (PermanentError, AuthError) as exc:
                level = logging.ERROR if isinstance(exc, ConfigError) else logging.INFO
                log.log(level, "channel refused, trying the next one",
                        extra={**ctx, "channel": channel, "code": exc.code, "error": exc.message})
                continue
            except QuotaExhausted as exc:
                if not self.settings.dispatch.quota_fallback:
                    raise self._postponed(channel, exc, attempts, ctx) from None
                log.info("channel quota used up, trying the next one",
                         extra={**ctx, "channel": channel, "code": exc.code, "error": exc.message})
                exhausted = exhausted or (channel, exc)
                continue
            except RetryableError as exc:
                raise self._postponed(channel, exc, attempts, ctx) from None
            return self._sent(n, channel, sent, attempts, ctx, sms_cost)
        if exhausted is not None:
            raise self._postponed(*exhausted, attempts, ctx)
        _child(metrics.notifications, n.kind, "none", "failed").inc()
        log.warning("every channel refused", extra=ctx)
        return DeliveryOutcome("failed", None, None, 0, attempts)

    def _postponed(self, channel: str, exc: RetryableError, attempts: list[Attempt],
                   ctx: dict[str, Any]) -> RetryableError:
        exc.attempts = attempts  # type: ignore[attr-defined]
        until = exc.until.isoformat() if isinstance(exc, DeferError) else None
        self.postponements.postponed(channel, exc.code, exc.message, {**ctx, "until": until})
        return exc

    def send_oa_message(self, user_id: str, message: dict[str, Any], *,
                        tracking: str | None = None) -> str:
        """A CS message to a follower (citizen side); returns Zalo's message_id."""
        return self._one_channel("zalo_oa", lambda on_auth: Sent(self.zalo.send_oa(
            user_id, message, tracking=tracking, on_auth_error=on_auth)))

    def send_link_code(self, phone: str, code: str, *, tracking: str) -> str:
        """The ZNS one-time code proving a follower owns `phone` (bridge/citizen/linking.py):
        template LINK_CODE, parameter `otp`. Returns Zalo's msg_id."""
        template = zns_template_id(self.settings, LINK_CODE)
        return self._one_channel("zns", lambda on_auth: Sent(self.zalo.send_zns(
            phone, template, {"otp": code}, tracking=tracking, on_auth_error=on_auth)))

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()

    # --- internals ----------------------------------------------------------------------
    def _one_channel(self, channel: str, send: Send) -> str:
        """A send outside the notices' channel plan: that channel alone, with retries."""
        return self.retry.run(
            lambda: self._attempt(channel, send, [], self.prices[channel])).provider_id

    def _plan(self, n: Notification, ctx: dict[str, Any], sms: str, sms_cost: int) -> list[Step]:
        plan: list[Step] = []
        user_id = self._follower(n.phone, ctx)
        if user_id:
            message = notice(without_zalo_link(n.text), n.dossier_code)
            plan.append(("zalo_oa", lambda on_auth: Sent(self.zalo.send_oa(
                user_id, message, tracking=n.idempotency_key, on_auth_error=on_auth)),
                self.prices["zalo_oa"]))
        if n.phone:
            phone, template = n.phone, zns_template_id(self.settings, n.kind)
            plan.append(("zns", lambda on_auth: Sent(self.zalo.send_zns(
                phone, template, n.template_data, tracking=n.idempotency_key,
                on_auth_error=on_auth)), self.prices["zns"]))
            if self.settings.sms.enabled:
                plan.append(("sms", lambda _: self.sms.send(phone, sms, tracking=n.idempotency_key),
                             sms_cost))
        return plan

    def _follower(self, phone: str | None, ctx: dict[str, Any]) -> str | None:
        if not phone or self.followers is None:
            return None
        try:
            return self.followers.user_for_phone(phone)
        except Exception:
            # Losing the free channel costs money, not delivery: go on with ZNS/SMS.
            log.warning("follower lookup failed; skipping the OA channel", extra=ctx,
                        exc_info=True)
            return None

    def _attempt(self, channel: str, send: Send, attempts: list[Attempt], price: int) -> Sent:
        """One send; its answer with what it cost: the provider's word, else `price`."""
        def on_auth(exc: AuthError) -> None:
            self._record(attempts, channel, "auth", exc)

        try:
            sent = send(on_auth)
        except BridgeError as exc:
            self._record(attempts, channel, result_of(exc), exc)
            raise
        charged = price if sent.charged is None else sent.charged
        self._record(attempts, channel, "ok", None, charged)
        return Sent(sent.provider_id, charged)

    def _record(self, attempts: list[Attempt], channel: str, result: str,
                exc: BridgeError | None, price: int = 0) -> None:
        attempts.append(Attempt(channel, result, exc.code if exc else None,  # type: ignore[arg-type]
                                exc.message if exc else None, self._wall(), price))
        _child(metrics.delivery_attempts, channel, result).inc()

    def _sent(self, n: Notification, channel: str, sent: Sent, attempts: list[Attempt],
              ctx: dict[str, Any], sms_cost: int) -> DeliveryOutcome:
        provider_id, price = sent.provider_id, int(sent.charged or 0)
        if channel == "sms":
            sms_cost = price  # what it did cost by SMS: the gateway's word
        self.postponements.delivered(channel)
        _child(metrics.notifications, n.kind, channel, "sent").inc()
        _child(metrics.cost_vnd, channel).inc(price)
        if channel != "sms":
            metrics.sms_savings_vnd.inc(max(0, sms_cost - price))
        if n.source_ts_ms is not None:
            age = self._wall().timestamp() - n.source_ts_ms / 1000
            _child(metrics.event_to_sent, channel).observe(max(0.0, age))
        log.info("notification sent", extra={**ctx, "channel": channel,
                                             "provider_message_id": provider_id, "price_vnd": price})
        return DeliveryOutcome("sent", channel, provider_id, price, attempts, sms_cost)
