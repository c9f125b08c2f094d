"""Test doubles for the dispatcher tests: a clock, and a scripted fake Zalo/SMS upstream."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx

from bridge.templates.sms import sms_parts


class FakeClock:
    """Monotonic and wall time that only move when someone sleeps (or `advance`)."""

    def __init__(self, start: datetime = datetime(2026, 11, 3, 3, 0, tzinfo=timezone.utc)) -> None:
        self._t = 1000.0
        self._wall0 = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._t

    def time(self) -> float:
        return self._wall0.timestamp() + (self._t - 1000.0)

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._t - 1000.0)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self._t += seconds


Reply = dict[str, Any] | int | str | Exception | httpx.Response


@dataclass
class FakeUpstream:
    """A MockTransport handler imitating Zalo OA/ZNS/OAuth and the SMS gateway.

    Script answers per route with `script(route, *replies)`: a dict is a Zalo error envelope
    (`{"error": -118}`), an int an HTTP status, "bad_json" a cut body, an Exception is
    raised (e.g. httpx.ConnectTimeout). Unscripted calls succeed.
    """

    requests: list[httpx.Request] = field(default_factory=list)
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    access_token: str = "AT-0"
    refresh_token: str = "RT-0"
    expires_in: str = "90000"
    quota: tuple[int, int] = (500, 499)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def script(self, route: str, *replies: Reply) -> None:
        self.scripts.setdefault(route, []).extend(replies)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def calls(self, route: str) -> list[httpx.Request]:
        return [r for r in self.requests if _route(r) == route]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = _route(request)
        queue = self.scripts.get(route)
        if queue:
            reply = queue.pop(0)
            if isinstance(reply, Exception):
                raise reply
            if isinstance(reply, httpx.Response):
                return reply
            if isinstance(reply, int):
                return httpx.Response(reply, text=f"<h1>{reply}</h1>")
            if reply == "bad_json":
                return httpx.Response(200, text='{"error":0,"mess')
            assert isinstance(reply, dict), f"not a scripted reply: {reply!r}"
            return httpx.Response(200, json={"message": "scripted", **reply})
        return self._ok(route, request)

    def _ok(self, route: str, request: httpx.Request) -> httpx.Response:
        n = next(self._ids)
        if route == "oauth":
            form = parse_qs(request.content.decode())
            if form.get("refresh_token") != [self.refresh_token]:
                return httpx.Response(200, json={"error": -14014, "error_name": "Invalid refresh token"})
            self.access_token, self.refresh_token = f"AT-{n}", f"RT-{n}"
            return httpx.Response(200, json={"access_token": self.access_token,
                                             "refresh_token": self.refresh_token,
                                             "expires_in": self.expires_in})
        if route in ("oa", "zns", "quota") and request.headers.get("access_token") != self.access_token:
            return httpx.Response(200, json={"error": -216 if route == "oa" else -124,
                                             "message": "Access token invalid"})
        if route == "oa":
            body = json.loads(request.content)
            return httpx.Response(200, json={"error": 0, "message": "Success", "data": {
                "message_id": f"oa-{n}", "user_id": body["recipient"]["user_id"],
                "sent_time": "1626926349402", "quota": {"quota_type": "reply"}}})
        if route == "zns":
            daily, remaining = self.quota
            self.quota = (daily, remaining - 1)
            return httpx.Response(200, json={"error": 0, "message": "Success", "data": {
                "msg_id": f"zns-{n}", "sent_time": "1626926349402", "sending_mode": "1",
                "quota": {"dailyQuota": str(daily), "remainingQuota": str(remaining - 1)}}})
        if route == "quota":
            daily, remaining = self.quota
            return httpx.Response(200, json={"error": 0, "message": "success", "data": {
                "dailyQuota": daily, "remainingQuota": remaining}})
        if route == "sms":  # billed per part, as the sandbox's gateway
            parts = sms_parts(json.loads(request.content)["text"])
            return httpx.Response(200, json={"sms_id": f"sms-{n}", "status": "accepted",
                                             "parts": parts, "price": 350 * parts})
        return httpx.Response(404, text="no route")


def _route(request: httpx.Request) -> str:
    path = request.url.path
    return {"/v4/oa/access_token": "oauth", "/v3.0/oa/message/cs": "oa",
            "/message/template": "zns", "/message/quota": "quota",
            "/sms/send": "sms"}.get(path, path)


def body(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)


Handler = Callable[[httpx.Request], httpx.Response]
