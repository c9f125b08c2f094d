"""A thin client for the three Zalo hosts (zalo-api.md §1–§4).

Each method does one HTTP call and returns a small dataclass or raises an exception of
bridge.errors. Tokens are passed in (the TokenManager owns them), so this client holds no
state but its HTTP client and can be used from any thread.

Zalo answers HTTP 200 even for errors, so the body's `error` is always checked. 5xx,
timeouts, resets and non-JSON bodies are TransportError (retryable).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

import httpx

from bridge import metrics
from bridge.dispatch import http
from bridge.dispatch.classify import ZaloChannel, classify, classify_oauth, is_known
from bridge.dispatch.quota import QuotaReading
from bridge.dispatch.tokens import TokenGrant
from bridge.errors import ConfigError, DeferError, TransportError
from bridge.settings import ZaloSettings

log = logging.getLogger(__name__)

TRACKING_ID_MAX = 48  # ZNS limit (§3.2)


@dataclass(frozen=True, slots=True)
class OaSent:
    message_id: str
    user_id: str | None


@dataclass(frozen=True, slots=True)
class ZnsSent:
    msg_id: str
    quota: QuotaReading | None


def tracking_id(key: str) -> str:
    """The idempotency key as a ZNS tracking_id: itself when short enough, else a digest."""
    if len(key) <= TRACKING_ID_MAX:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:TRACKING_ID_MAX]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _quota(raw: Any) -> QuotaReading | None:
    # Strings in send responses, numbers from /message/quota (§3.3, §3.4).
    if not isinstance(raw, dict):
        return None
    reading = QuotaReading(_int_or_none(raw.get("dailyQuota")),
                           _int_or_none(raw.get("remainingQuota")))
    return reading if reading.daily is not None or reading.remaining is not None else None


class ZaloClient:
    def __init__(self, cfg: ZaloSettings, client: http.HttpClient, *, night_end: time = time(6, 0),
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.cfg = cfg
        self.http = client
        self.night_end = night_end
        self._wall = wall
        self._oa = cfg.oa_base_url.rstrip("/")
        self._zns = cfg.zns_base_url.rstrip("/")
        self._oauth = cfg.oauth_base_url.rstrip("/")

    # --- OA (openapi.zalo.me) ----------------------------------------------------------
    def send_cs(self, token: str, user_id: str, message: dict[str, Any], *,
                tracking: str | None = None) -> OaSent:
        """A consultation (CS) message: text, buttons, request_user_info… (§2.2)."""
        body: dict[str, Any] = {"recipient": {"user_id": user_id}, "message": message}
        if tracking:
            body["tracking_id"] = tracking_id(tracking)  # ignored by Zalo, recorded by the sandbox
        data = self._call("zalo_oa", "POST", f"{self._oa}/v3.0/oa/message/cs", token, json=body)
        message_id = data.get("message_id")
        if not message_id:
            raise TransportError("zalo_oa: success answer without message_id")
        return OaSent(str(message_id), _str_or_none(data.get("user_id")))

    # --- ZNS (business.openapi.zalo.me) -------------------------------------------------
    def send_zns(self, token: str, phone: str, template_id: str, template_data: dict[str, Any], *,
                 tracking: str) -> ZnsSent:
        body = {"phone": phone, "template_id": template_id,
                "template_data": {k: str(v) for k, v in template_data.items()},
                "tracking_id": tracking_id(tracking)}
        data = self._call("zns", "POST", f"{self._zns}/message/template", token, json=body)
        msg_id = data.get("msg_id")
        if not msg_id:
            raise TransportError("zns: success answer without msg_id")
        return ZnsSent(str(msg_id), _quota(data.get("quota")))

    def template_limits(self, token: str, template_id: str) -> dict[str, int]:
        """Parameter name → maxLength of an approved template (`/template/info/v2`, §3.4);
        a parameter without a limit is left out."""
        data = self._call("zns", "GET", f"{self._zns}/template/info/v2", token, counted=False,
                          params={"template_id": template_id})
        limits: dict[str, int] = {}
        for param in data.get("listParams") or []:
            if isinstance(param, dict) and isinstance(param.get("name"), str):
                limit = _int_or_none(param.get("maxLength"))
                if limit:
                    limits[param["name"]] = limit
        return limits

    def zns_quota(self, token: str) -> QuotaReading:
        data = self._call("zns", "GET", f"{self._zns}/message/quota", token)
        return _quota(data) or QuotaReading(None, None)

    # --- OAuth (oauth.zaloapp.com) ------------------------------------------------------
    def refresh(self, refresh_token: str) -> TokenGrant:
        """Trade the (single-use) refresh token for a new pair (§4)."""
        what = "zalo oauth"
        response = http.send(
            self.http, "POST", f"{self._oauth}/v4/oa/access_token", what=what,
            headers={"secret_key": self.cfg.app_secret.get_secret_value()},
            data={"refresh_token": refresh_token, "app_id": self.cfg.app_id,
                  "grant_type": "refresh_token"})
        body = self._checked_body(response, what)
        error = _int_or_none(body.get("error")) or 0
        if error:
            raise classify_oauth(error, str(body.get("error_name") or body.get("message") or ""),
                                 now=self._wall())
        try:
            return TokenGrant(str(body["access_token"]), str(body["refresh_token"]),
                              float(body["expires_in"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TransportError(f"{what}: malformed token answer ({type(exc).__name__})") from exc

    # --- plumbing -----------------------------------------------------------------------
    def _call(self, channel: ZaloChannel, method: str, url: str, token: str,
              counted: bool = True, **kwargs: Any) -> dict[str, Any]:
        """`counted`: a refusal counts in onestop_zalo_errors_total (sends, not lookups)."""
        response = http.send(self.http, method, url, what=channel,
                             headers={"access_token": token}, **kwargs)
        body = self._checked_body(response, channel)
        if "error" not in body:
            raise TransportError(f"{channel}: answer without an error field")
        code = _int_or_none(body.get("error"))
        if code is None:
            raise TransportError(f"{channel}: error field is not a number")
        if code != 0 and counted:
            metrics.zalo_errors.labels(channel=channel,
                                       code=str(code) if is_known(code, channel) else "other").inc()
        if code != 0:
            raise classify(code, str(body.get("message") or ""), channel, now=self._wall(),
                           night_end=self.night_end)
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def _checked_body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            wait = http.retry_after_s(response, 60.0)
            raise DeferError(f"{what}: HTTP 429", until=self._wall() + timedelta(seconds=wait))
        if status >= 500 or status == 408:
            raise TransportError(f"{what}: HTTP {status}")
        if status != 200:
            # Zalo never answers like this; a wrong base URL or a proxy in the way.
            raise ConfigError(f"{what}: unexpected HTTP {status} from {response.request.url.host}")
        return http.json_body(response, what=what)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
