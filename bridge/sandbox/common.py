"""Plumbing shared by the sandbox's routes: app keys, envelopes, the Zalo call wrapper, faults."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from aiohttp import web

from bridge.sandbox.codes import Host, message_for
from bridge.sandbox.scenario import FaultItem
from bridge.sandbox.state import SandboxState
from bridge.sandbox.webhooks import WebhookSender

STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)
SENDER: web.AppKey[WebhookSender] = web.AppKey("sandbox_webhooks", WebhookSender)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ZaloHandler = Callable[[web.Request, SandboxState], Awaitable[web.StreamResponse]]

_JSON = "application/json"


def iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms(state: SandboxState) -> int:
    return int(state.clock() * 1000)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(body=body, status=status, headers=headers, content_type=_JSON, charset="utf-8")


def zalo_reply(state: SandboxState, host: Host, code: int, data: dict[str, Any] | None = None,
               message: str | None = None) -> web.Response:
    """Zalo's envelope, always HTTP 200; `data` only on success; rate headers on every answer."""
    body: dict[str, Any] = {"error": code, "message": message or message_for(code, host)}
    if code == 0:
        if data is not None:
            body["data"] = data
    else:
        state.count_error(code)
    window = state.zalo_window
    headers = {"X-RateLimit-Limit": str(window.limit), "X-RateLimit-Remain": str(window.remaining())}
    return json_response(body, headers=headers)


async def read_json(request: web.Request) -> tuple[Any, str | None]:
    """(body, problem): problem is "empty" or "invalid" when the body is not usable JSON."""
    raw = await request.read()
    if not raw.strip():
        return None, "empty"
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError):
        return None, "invalid"


async def latency(state: SandboxState) -> None:
    if state.scenario.latency_ms:
        await asyncio.sleep(state.scenario.latency_ms / 1000)


def zalo_api(path: str, host: Host, handler: ZaloHandler) -> Handler:
    """Wrap a Zalo API handler: latency, stats, the -32 window, the access_token check."""
    # zalo-api.md §11: an unknown token is each host's own code, an expired one -220 on both.
    invalid_token = -216 if host == "oa" else -124

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        await latency(state)
        state.requests_per_path[path] += 1
        now = time.monotonic()
        state.observed.record(now)
        if not state.zalo_window.admit(now):
            state.rate_limit_rejections += 1
            return zalo_reply(state, host, -32)
        check = state.tokens.check(request.headers.get("access_token"))
        if check != "ok":
            return zalo_reply(state, host, invalid_token if check == "unknown" else -220)
        return await handler(request, state)

    return wrapped


async def transport_fault(request: web.Request, state: SandboxState, item: str) -> web.StreamResponse | None:
    """Answer a non-Zalo fault; None means "carry on normally" (after a ``slow:<ms>`` delay)."""
    if item.startswith("slow:"):
        await asyncio.sleep(float(item[5:]) / 1000)
        return None
    state.count_error(item)
    if item == "bad_json":
        return web.Response(body=b'{"error":0,"message":"Succ', content_type=_JSON)
    if item.startswith("http_"):
        status = int(item[5:])
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return web.Response(status=status, text=f"<html><body><h1>{status} {reason}</h1></body></html>",
                            content_type="text/html")
    # "timeout": hold the request, then drop the connection without answering.
    await asyncio.sleep(state.scenario.timeout_hold_s)
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=504)


async def zalo_fault(request: web.Request, state: SandboxState, host: Host,
                     item: FaultItem | None) -> web.StreamResponse | None:
    """A scripted answer for a Zalo call (int → Zalo error envelope), or None to proceed."""
    if item is None or item == 0:
        return None
    if isinstance(item, int):
        return zalo_reply(state, host, item)
    return await transport_fault(request, state, item)
