"""ZNS host (business.openapi.zalo.me): template send by phone, quota, status, template info.

Order of checks for a send: rate window and token (wrapper) → body (-121/-122) → phone
``84`` + 9 digits (-108) → template registry (-109/-111/-112/-1121/-1122/-1124) →
tracking_id ≤ 48 (-132) → scripted fault for ``phones.<phone>.zns`` → ``has_zalo`` (-118) →
night window (-133) → daily quota (-144) → accepted: recorded, quota taken, answered, and a
signed ZNS ``user_received_message`` scheduled ``delivery_delay_ms`` later.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bridge.sandbox import events
from bridge.sandbox.common import SENDER, read_json, zalo_fault, zalo_reply
from bridge.sandbox.messages import MessageRecord
from bridge.sandbox.state import SandboxState
from bridge.sandbox.templates import check_template

PHONE = re.compile(r"^84\d{9}$")
TRACKING_MAX = 48


def _check_send(state: SandboxState, body: Any) -> tuple[int, str | None]:
    if not isinstance(body, dict):
        return -122, None
    phone = body.get("phone")
    if not isinstance(phone, str) or not PHONE.match(phone):
        return -108, None
    code, message = check_template(state.scenario, body.get("template_id"), body.get("template_data"))
    if code:
        return code, message
    tracking_id = body.get("tracking_id")
    if tracking_id is not None and (not isinstance(tracking_id, str) or len(tracking_id) > TRACKING_MAX):
        return -132, f"tracking_id is invalid (a string of at most {TRACKING_MAX} characters)"
    return 0, None


async def send_template(request: web.Request, state: SandboxState) -> web.StreamResponse:
    body, problem = await read_json(request)
    if problem:
        return zalo_reply(state, "zns", -121 if problem == "empty" else -122)
    code, message = _check_send(state, body)
    if code:
        return zalo_reply(state, "zns", code, message=message)
    phone: str = body["phone"]
    scripted = await zalo_fault(request, state, "zns", state.next_fault("phones", phone, "zns"))
    if scripted is not None:
        return scripted
    script = state.scenario.phones.get(phone)
    if script is not None and not script.has_zalo:
        return zalo_reply(state, "zns", -118)
    if state.is_night():
        return zalo_reply(state, "zns", -133)
    now = state.clock()
    if not state.quota.take(now):
        return zalo_reply(state, "zns", -144)
    sc = state.scenario
    sent_ms = int(now * 1000)
    delivery_ms = sent_ms + int(sc.delivery_delay_ms)
    record = MessageRecord(
        channel="zns", message_id=events.new_msg_id(), at=now, phone=phone, tracking_id=body.get("tracking_id"),
        template_id=body["template_id"], template_data=body.get("template_data"), delivery_time_ms=delivery_ms,
    )
    state.messages.add(record)
    if sc.delivery_webhooks and state.webhook_url:
        payload = events.zns_received(sc, phone, record.message_id, record.tracking_id, delivery_ms, delivery_ms)
        request.app[SENDER].schedule(payload, sc.delivery_delay_ms / 1000, zns=True)
    quota = {"dailyQuota": str(state.quota.daily), "remainingQuota": str(state.quota.remaining(now))}
    data = {"msg_id": record.message_id, "sent_time": str(sent_ms), "sending_mode": "1", "quota": quota}
    return zalo_reply(state, "zns", 0, data)


async def quota(request: web.Request, state: SandboxState) -> web.StreamResponse:
    daily = state.quota.daily
    data = {
        "dailyQuota": daily, "remainingQuota": state.quota.remaining(state.clock()),
        "dailyQuotaPromotion": None, "remainingQuotaPromotion": None,
        "monthlyPromotionQuota": 0, "remainingMonthlyPromotionQuota": 0, "estimatedNextMonthPromotionQuota": 0,
    }
    return zalo_reply(state, "zns", 0, data, message="success")


async def status(request: web.Request, state: SandboxState) -> web.StreamResponse:
    message_id = request.query.get("message_id", "")
    if not message_id:
        return zalo_reply(state, "zns", -107)
    record = state.messages.get(message_id)
    if record is None or record.channel != "zns" or record.delivery_time_ms is None:
        data: dict[str, Any] = {"delivery_time": "", "message": "The message does not exist", "status": -1}
    elif record.delivery_time_ms <= state.clock() * 1000:
        data = {"delivery_time": str(record.delivery_time_ms),
                "message": "The message was delivered to the user's phone", "status": 1}
    else:
        data = {"delivery_time": "", "message": "The message has not been delivered yet", "status": 0}
    return zalo_reply(state, "zns", 0, data)


async def template_info(request: web.Request, state: SandboxState) -> web.StreamResponse:
    template_id = request.query.get("template_id", "")
    spec = state.scenario.templates.get(template_id)
    if spec is None:
        return zalo_reply(state, "zns", -109)
    params = [
        {"name": name, "require": p.require, "type": "STRING", "maxLength": p.max_length or 0,
         "minLength": p.min_length or 0, "acceptNull": not p.require}
        for name, p in spec.items()
    ]
    data = {"templateId": template_id, "templateName": template_id, "status": "ENABLE", "listParams": params,
            "templateQuality": "HIGH", "templateTag": "IN_TRANSACTION", "price": "150", "timeout": 7200000}
    return zalo_reply(state, "zns", 0, data)
