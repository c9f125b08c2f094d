"""SMS gateway: ``POST /sms/send`` (our own contract, see the package docstring)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from aiohttp import web

from bridge.sandbox.common import STATE, json_response, latency, read_json, transport_fault
from bridge.sandbox.messages import MessageRecord
from bridge.sandbox.state import SandboxState
from bridge.templates.sms import sms_parts

PHONE = re.compile(r"^84\d{9}$")
PATH = "/sms/send"
_SCRIPTED_ERRORS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 429: "rate_limited"}


def _error(state: SandboxState, status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
    state.count_error(f"sms_{status}")
    return json_response({"error": error}, status=status, headers=headers)


async def send(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    await latency(state)
    state.requests_per_path[PATH] += 1
    sc = state.scenario
    if request.headers.get("Authorization") != f"Bearer {sc.sms_api_key}":
        return _error(state, 401, "unauthorized")
    tick = time.monotonic()  # the rate is about real time, whatever clock the scenario runs on
    if not state.sms_window.admit(tick):
        state.sms_rate_rejections += 1
        retry = str(state.sms_window.retry_after_s(tick))
        return _error(state, 429, "rate_limited", {"Retry-After": retry})
    body, problem = await read_json(request)
    if problem or not isinstance(body, dict):
        return _error(state, 400, "invalid_request")
    phone = body.get("phone")
    if not isinstance(phone, str) or not PHONE.match(phone):
        return _error(state, 400, "invalid_phone")
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return _error(state, 400, "invalid_text")
    scripted = await _scripted(request, state, phone)
    if scripted is not None:
        return scripted
    tracking_id = body.get("tracking_id")
    parts = sms_parts(text)  # billed per part, as carriers bill a long SMS
    record = MessageRecord(
        channel="sms", message_id="sms-" + secrets.token_hex(8), at=state.clock(), phone=phone,
        tracking_id=tracking_id if isinstance(tracking_id, str) else None, text=text,
        extra={"brandname": body.get("brandname"), "parts": parts, "price": parts * sc.sms_price},
    )
    state.messages.add(record)
    return json_response({"sms_id": record.message_id, "status": "accepted", "parts": parts,
                          "price": parts * sc.sms_price})


async def _scripted(request: web.Request, state: SandboxState, phone: str) -> web.StreamResponse | None:
    """Scripted SMS faults: ints are HTTP statuses, strings the common transport faults."""
    item: Any = state.next_fault("phones", phone, "sms")
    if item is None or item == 200:
        return None
    if isinstance(item, int):
        headers = {"Retry-After": "1"} if item == 429 else None
        return _error(state, item, _SCRIPTED_ERRORS.get(item, "server_error" if item >= 500 else "error"), headers)
    return await transport_fault(request, state, item)
