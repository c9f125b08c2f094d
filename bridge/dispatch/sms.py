"""Client for the SMS gateway (brandname SMS), the last and dearest channel.

Contract: ``POST {base}/sms/send`` JSON ``{phone, text, brandname, tracking_id}`` with
``Authorization: Bearer <key>`` → 200 ``{sms_id, status, price}`` (price for all the
parts of a long text); 400
``{"error": "invalid_phone"}``; 401 bad key; 429 with ``Retry-After``; 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx

from bridge.dispatch import http
from bridge.errors import (
    BadInputError, ConfigError, DeferError, RecipientError, TransportError,
)
from bridge.settings import SmsSettings



@dataclass(frozen=True, slots=True)
class SmsSent:
    sms_id: str
    status: str
    price: int | None


class SmsClient:
    def __init__(self, cfg: SmsSettings, client: http.HttpClient, *,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.cfg = cfg
        self.http = client
        self._url = cfg.base_url.rstrip("/") + "/sms/send"
        self._wall = wall

    def send(self, phone: str, text: str, *, tracking: str) -> SmsSent:
        response = http.send(
            self.http, "POST", self._url, what="sms",
            headers={"Authorization": f"Bearer {self.cfg.api_key.get_secret_value()}"},
            json={"phone": phone, "text": text, "brandname": self.cfg.brandname,
                  "tracking_id": tracking})
        status = response.status_code
        if status == 200:
            body = http.json_body(response, what="sms")
            if not body.get("sms_id"):
                raise TransportError("sms: success answer without sms_id")
            price = body.get("price")
            return SmsSent(str(body["sms_id"]), str(body.get("status") or "accepted"),
                           int(price) if isinstance(price, (int, float)) else None)
        raise self._error(response)

    def _error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status == 429:
            wait = http.retry_after_s(response, 1.0)
            return DeferError(f"sms: HTTP 429, retry after {wait:g}s",
                              until=self._wall() + timedelta(seconds=wait), code=429)
        if status >= 500 or status == 408:
            return TransportError(f"sms: HTTP {status}", code=status)
        if status in (401, 403):
            return ConfigError(f"sms: HTTP {status}, API key refused", code=status)
        reason = _error_name(response)
        if status == 400 and reason == "invalid_phone":
            return RecipientError("sms: gateway refused the phone number", code=status)
        return BadInputError(f"sms: HTTP {status} {reason}", code=status)


def _error_name(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "non-JSON error body"
    return str(body.get("error")) if isinstance(body, dict) else "error"
