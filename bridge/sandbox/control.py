"""Control endpoints under ``/sandbox/`` for tests and the demo (never rate-limited)."""

from __future__ import annotations

import re
from typing import Any, Callable

from aiohttp import web
from pydantic import ValidationError

from bridge.sandbox import events
from bridge.sandbox.common import SENDER, STATE, iso_utc, json_response, now_ms, read_json
from bridge.sandbox.scenario import Scenario, scenario_json
from bridge.sandbox.state import SandboxState

PHONE = re.compile(r"^84\d{9}$")


def _bad(reason: str, **extra: Any) -> web.Response:
    return json_response({"error": reason, **extra}, status=400)


def _int_arg(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    return int(value) if value and value.lstrip("-").isdigit() else None


async def messages(request: web.Request) -> web.StreamResponse:
    q = request.query
    found = request.app[STATE].messages.query(
        channel=q.get("channel") or None, phone=q.get("phone") or None, user_id=q.get("user_id") or None,
        tracking_id=q.get("tracking_id") or None, after_seq=_int_arg(request, "after"),
        limit=_int_arg(request, "limit"),
    )
    return json_response([record.to_json() for record in found])


async def reset(request: web.Request) -> web.StreamResponse:
    request.app[SENDER].cancel_pending()
    request.app[STATE].reset()
    return json_response({"ok": True})


async def get_scenario(request: web.Request) -> web.StreamResponse:
    return json_response(scenario_json(request.app[STATE].scenario))


async def put_scenario(request: web.Request) -> web.StreamResponse:
    body, problem = await read_json(request)
    if problem or not isinstance(body, dict):
        return _bad("scenario must be a JSON object")
    try:
        scenario = Scenario.model_validate(body)
    except ValidationError as exc:
        return _bad("invalid scenario", details=exc.errors(include_url=False, include_context=False))
    state = request.app[STATE]
    state.replace_scenario(scenario)
    return json_response(scenario_json(state.scenario))


async def expire_tokens(request: web.Request) -> web.StreamResponse:
    return json_response({"expired": request.app[STATE].tokens.expire_all()})


async def stats(request: web.Request) -> web.StreamResponse:
    body = request.app[STATE].stats()
    body["webhooks"]["pending"] = request.app[SENDER].pending
    return json_response(body)


async def refresh_token(request: web.Request) -> web.StreamResponse:
    return json_response({"refresh_token": request.app[STATE].tokens.current_refresh})


async def webhooks(request: web.Request) -> web.StreamResponse:
    log = [{**entry, "at": iso_utc(entry["at"])} for entry in request.app[STATE].webhook_log]
    return json_response(log)


async def put_webhook(request: web.Request) -> web.StreamResponse:
    body, problem = await read_json(request)
    url = body.get("url") if isinstance(body, dict) else None
    if problem or not (url is None or isinstance(url, str)):
        return _bad('body must be {"url": "http://…" | null}')
    state = request.app[STATE]
    state.webhook_url_override = url
    return json_response({"webhook_url": state.webhook_url})


async def health(request: web.Request) -> web.StreamResponse:
    return json_response({"ok": True})


def _follow(state: SandboxState, user_id: str, body: dict[str, Any]) -> dict[str, Any] | str:
    state.touch_user(user_id).is_follower = True
    return events.follow_event(state.scenario, "follow", user_id, now_ms(state))


def _unfollow(state: SandboxState, user_id: str, body: dict[str, Any]) -> dict[str, Any] | str:
    # Not an interaction: the last-interaction time stays as it was.
    follower = state.followers.get(user_id) or state.touch_user(user_id)
    follower.is_follower = False
    return events.follow_event(state.scenario, "unfollow", user_id, now_ms(state))


def _send_text(state: SandboxState, user_id: str, body: dict[str, Any]) -> dict[str, Any] | str:
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return "text is required for user_send_text"
    state.touch_user(user_id)
    return events.user_text(state.scenario, user_id, text, now_ms(state))


def _submit_info(state: SandboxState, user_id: str, body: dict[str, Any]) -> dict[str, Any] | str:
    known = state.followers.get(user_id)
    phone = body.get("phone") or (known.phone if known else None)
    if not isinstance(phone, str) or not PHONE.match(phone):
        return "phone (84 + 9 digits) is required for user_submit_info"
    follower = state.touch_user(user_id)
    follower.phone = phone
    if isinstance(body.get("name"), str):
        follower.display_name = body["name"]
    info = events.default_info(follower.display_name, phone)
    if isinstance(body.get("info"), dict):
        info.update(body["info"])
    return events.submit_info(state.scenario, user_id, info, now_ms(state))


EVENTS: dict[str, Callable[[SandboxState, str, dict[str, Any]], dict[str, Any] | str]] = {
    "follow": _follow,
    "unfollow": _unfollow,
    "user_send_text": _send_text,
    "user_submit_info": _submit_info,
}


async def user_event(request: web.Request) -> web.StreamResponse:
    """Play a citizen acting in Zalo: update state, then deliver the signed webhook now.

    Answers ``{"status": <bridge HTTP status or null>, "elapsed_ms", "event": <body sent>}``.
    """
    body, problem = await read_json(request)
    if problem or not isinstance(body, dict):
        return _bad("body must be a JSON object")
    name, user_id = body.get("event_name"), body.get("user_id")
    if name not in EVENTS:
        return _bad(f"event_name must be one of {', '.join(EVENTS)}")
    if not isinstance(user_id, str) or not user_id:
        return _bad("user_id is required")
    state = request.app[STATE]
    payload = EVENTS[name](state, user_id, body)
    if isinstance(payload, str):
        return _bad(payload)
    if isinstance(body.get("display_name"), str):
        state.followers[user_id].display_name = body["display_name"]
    result = await request.app[SENDER].send_now(payload)
    return json_response({**result, "event": payload})
