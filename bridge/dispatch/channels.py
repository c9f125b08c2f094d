"""One send on one channel, with the channel's quota and token handling but no retries.

Every HTTP request to a Zalo host (OA or ZNS, including the quota read) takes a permit of
the one app-level limiter: Zalo's 4,000 req/min is per app, whichever host is called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bridge.dispatch.outcome import Sent
from bridge.dispatch.params import TemplateLimits, clip
from bridge.dispatch.quota import QuotaReading, ZnsQuota
from bridge.dispatch.ratelimit import RateLimiter
from bridge.dispatch.sms import SmsClient
from bridge.dispatch.tokens import TokenManager
from bridge.dispatch.zalo import ZaloClient
from bridge.errors import AuthError, BridgeError, TransportError

log = logging.getLogger(__name__)
OnAuthError = Callable[[AuthError], None]


class ZaloChannels:
    """OA CS and ZNS sends sharing one token manager, one app limiter and the ZNS quota."""

    def __init__(self, client: ZaloClient, tokens: TokenManager, app_limiter: RateLimiter,
                 quota: ZnsQuota | None = None) -> None:
        self.client = client
        self.tokens = tokens
        self.app_limiter = app_limiter
        self.quota = quota if quota is not None else ZnsQuota(self.read_quota)
        self.limits = TemplateLimits(self._read_limits)

    def send_oa(self, user_id: str, message: dict[str, Any], *, tracking: str | None,
                on_auth_error: OnAuthError | None = None) -> str:
        def call(token: str) -> str:
            self.app_limiter.acquire()
            return self.client.send_cs(token, user_id, message, tracking=tracking).message_id

        return self.tokens.call(call, on_auth_error=on_auth_error)

    def send_zns(self, phone: str, template_id: str, template_data: dict[str, str], *,
                 tracking: str, on_auth_error: OnAuthError | None = None) -> str:
        self.quota.acquire()

        def call(token: str) -> str:
            data, cut = clip(template_data, self.limits.get(token, template_id))
            if cut:
                log.info("ZNS parameters cut to the template's maxLength",
                         extra={"template_id": template_id, "params": cut})
            self.app_limiter.acquire()
            sent = self.client.send_zns(token, phone, template_id, data, tracking=tracking)
            if sent.quota is not None:
                self.quota.observe(sent.quota)
            return sent.msg_id

        try:
            return self.tokens.call(call, on_auth_error=on_auth_error)
        except BridgeError as exc:
            if exc.code == -144:
                self.quota.exhausted()
            elif not isinstance(exc, TransportError):
                # Refused by Zalo or never sent: nothing was charged. A transport failure may
                # or may not have reached Zalo, so its unit stays spent.
                self.quota.refund()
            raise

    def _read_limits(self, token: str, template_id: str) -> dict[str, int]:
        self.app_limiter.acquire()
        return self.client.template_limits(token, template_id)

    def read_quota(self) -> QuotaReading:
        def call(token: str) -> QuotaReading:
            self.app_limiter.acquire()
            return self.client.zns_quota(token)

        return self.tokens.call(call)


class SmsChannel:
    def __init__(self, client: SmsClient, limiter: RateLimiter) -> None:
        self.client = client
        self.limiter = limiter

    def send(self, phone: str, text: str, *, tracking: str) -> Sent:
        self.limiter.acquire()
        sent = self.client.send(phone, text, tracking=tracking)
        return Sent(sent.sms_id, sent.price)
