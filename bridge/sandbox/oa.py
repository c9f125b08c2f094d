"""OA host (openapi.zalo.me): consultation (CS) messages, ZBS template by UID, user detail.

Order of checks for a send: rate window and token (wrapper) → body shape → scripted fault
for ``users.<user_id>.oa`` → follower (-213) → 7-day interaction (-230, CS only) / night
(-234, template only) → accepted: recorded, answered, OA receipt webhook scheduled.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from bridge.sandbox import events
from bridge.sandbox.codes import DISCONTINUED_CODE, DISCONTINUED_MESSAGE
from bridge.sandbox.common import SENDER, now_ms, read_json, zalo_fault, zalo_reply
from bridge.sandbox.messages import MessageRecord
from bridge.sandbox.state import CS_WINDOW_S, Follower, SandboxState
from bridge.sandbox.templates import check_template

TEXT_MAX = 2000
BUTTONS_MAX = 5
BUTTON_TYPES = {"oa.open.url", "oa.query.show", "oa.query.hide", "oa.open.sms", "oa.open.phone"}
VN = timezone(timedelta(hours=7))

Problem = tuple[int, str]


def _invalid(field: str) -> Problem:
    return -201, f"{field} is invalid!"


def _check_buttons(buttons: Any) -> Problem | None:
    if not isinstance(buttons, list) or not buttons:
        return _invalid("buttons")
    if len(buttons) > BUTTONS_MAX:
        return -210, f"Parameter exceeds allowable limit: at most {BUTTONS_MAX} buttons"
    for button in buttons:
        if not isinstance(button, dict) or not isinstance(button.get("title"), str):
            return _invalid("button.title")
        if button.get("type") not in BUTTON_TYPES:
            return _invalid("button.type")
        if "payload" not in button:
            return _invalid("button.payload")
    return None


def _check_attachment(attachment: Any) -> tuple[str, Problem | None]:
    """(message kind, problem) for a CS attachment."""
    if not isinstance(attachment, dict) or not isinstance(attachment.get("payload"), dict):
        return "", _invalid("attachment")
    payload = attachment["payload"]
    if attachment.get("type") == "file":
        return "file", None if isinstance(payload.get("token"), str) else _invalid("payload.token")
    if attachment.get("type") != "template":
        return "", _invalid("attachment.type")
    kind = payload.get("template_type")
    if kind == "request_user_info":
        elements = payload.get("elements")
        if not isinstance(elements, list) or len(elements) != 1 or not isinstance(elements[0], dict):
            return kind, _invalid("elements")
        element = elements[0]
        if not isinstance(element.get("title"), str) or len(element["title"]) > 100:
            return kind, _invalid("element.title")
        if len(str(element.get("subtitle", ""))) > 500:
            return kind, _invalid("element.subtitle")
        return kind, None
    if kind == "media":
        elements = payload.get("elements")
        return kind, None if isinstance(elements, list) and elements else _invalid("elements")
    return "buttons", _check_buttons(payload.get("buttons"))


def _check_cs(body: Any) -> tuple[str, str, Problem | None]:
    """(user_id, kind, problem) for a CS request body."""
    if not isinstance(body, dict):
        return "", "", _invalid("body")
    recipient = body.get("recipient")
    user_id = recipient.get("user_id") if isinstance(recipient, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return "", "", _invalid("user_id")
    message = body.get("message")
    if not isinstance(message, dict):
        return user_id, "", _invalid("message")
    text = message.get("text")
    if text is not None and (not isinstance(text, str) or not text):
        return user_id, "", _invalid("text")
    if text and len(text) > TEXT_MAX:
        return user_id, "", (-210, f"Parameter exceeds allowable limit: text over {TEXT_MAX} characters")
    if "attachment" not in message:
        return user_id, "text", None if text else _invalid("message")
    kind, problem = _check_attachment(message["attachment"])
    return user_id, kind, problem


def _tracking_id(body: dict[str, Any]) -> str | None:
    value = body.get("tracking_id")
    return value if isinstance(value, str) else None


def _accept(request: web.Request, state: SandboxState, follower: Follower, record: MessageRecord,
            data: dict[str, Any]) -> web.Response:
    state.messages.add(record)
    sc = state.scenario
    if sc.delivery_webhooks and state.webhook_url:
        payload = events.oa_received(sc, follower.user_id, record.message_id, now_ms(state))
        request.app[SENDER].schedule(payload, sc.delivery_delay_ms / 1000)
    return zalo_reply(state, "oa", 0, data)


async def send_cs(request: web.Request, state: SandboxState) -> web.StreamResponse:
    body, problem = await read_json(request)
    if problem:
        return zalo_reply(state, "oa", -201, message="body is invalid!")
    user_id, kind, bad = _check_cs(body)
    if bad:
        return zalo_reply(state, "oa", bad[0], message=bad[1])
    scripted = await zalo_fault(request, state, "oa", state.next_fault("users", user_id, "oa"))
    if scripted is not None:
        return scripted
    follower = state.follower(user_id)
    if follower is None or not follower.is_follower:
        return zalo_reply(state, "oa", -213)
    now = state.clock()
    if now - follower.last_interaction > CS_WINDOW_S:
        return zalo_reply(state, "oa", -230)
    message = body["message"]
    record = MessageRecord(
        channel="zalo_oa", message_id=events.new_msg_id(), at=now, phone=follower.phone, user_id=user_id,
        tracking_id=_tracking_id(body), text=message.get("text"),
        extra={"oa_endpoint": "cs", "message_type": kind, "attachment": message.get("attachment")},
    )
    quota_type = "reply" if now - follower.last_interaction <= 2 * 86400 else "sub_quota"
    data = {"message_id": record.message_id, "user_id": user_id, "sent_time": str(int(now * 1000)),
            "quota": {"quota_type": quota_type}}
    return _accept(request, state, follower, record, data)


async def send_template(request: web.Request, state: SandboxState) -> web.StreamResponse:
    """ZBS template message by UID (replaces the discontinued transaction/promotion APIs)."""
    body, problem = await read_json(request)
    if problem or not isinstance(body, dict):
        return zalo_reply(state, "oa", -201, message="body is invalid!")
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return zalo_reply(state, "oa", -201, message="user_id is invalid!")
    code, text = check_template(state.scenario, body.get("template_id"), body.get("template_data"))
    if code:
        return zalo_reply(state, "oa", code, message=text)
    scripted = await zalo_fault(request, state, "oa", state.next_fault("users", user_id, "oa"))
    if scripted is not None:
        return scripted
    follower = state.follower(user_id)
    if follower is None or not follower.is_follower:
        return zalo_reply(state, "oa", -213)
    if state.is_night():
        return zalo_reply(state, "oa", -234)
    now = state.clock()
    record = MessageRecord(
        channel="zalo_oa", message_id=events.new_msg_id(), at=now, phone=follower.phone, user_id=user_id,
        tracking_id=_tracking_id(body), template_id=body["template_id"], template_data=body.get("template_data"),
        extra={"oa_endpoint": "template", "message_type": "template"},
    )
    data = {"message_id": record.message_id, "user_id": user_id, "sent_time": str(int(now * 1000)),
            "quota": {"quota_type": "purchase_quota", "remain": state.quota.remaining(now)}}
    return _accept(request, state, follower, record, data)


async def user_detail(request: web.Request, state: SandboxState) -> web.StreamResponse:
    try:
        query = json.loads(request.query.get("data", ""))
    except ValueError:
        query = None
    user_id = query.get("user_id") if isinstance(query, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return zalo_reply(state, "oa", -201, message="user_id is invalid!")
    follower = state.follower(user_id)
    if follower is None or not follower.is_follower:
        return zalo_reply(state, "oa", -213)
    last = datetime.fromtimestamp(follower.last_interaction, VN).strftime("%d/%m/%Y")
    data: dict[str, Any] = {
        "user_id": user_id, "user_id_by_app": events.user_id_by_app(user_id), "user_external_id": "",
        "display_name": follower.display_name, "user_alias": "", "is_sensitive": False,
        "user_last_interaction_date": last, "user_is_follower": True, "avatar": "",
        "avatars": {"120": "", "240": ""}, "dynamic_param": "",
        "tags_and_notes_info": {"notes": [], "tag_names": []},
    }
    if follower.phone:
        data["shared_info"] = {"address": "", "city": "", "district": "", "phone": follower.phone,
                               "name": follower.display_name}
    return zalo_reply(state, "oa", 0, data)


async def discontinued(request: web.Request, state: SandboxState) -> web.StreamResponse:
    return zalo_reply(state, "oa", DISCONTINUED_CODE, message=DISCONTINUED_MESSAGE)


async def v2_message(request: web.Request, state: SandboxState) -> web.StreamResponse:
    return zalo_reply(state, "oa", -240)
