"""Webhook event bodies, shaped as in zalo-api.md §3.5 and §7.3 (ids and times are strings)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from bridge.sandbox.scenario import Scenario


def new_msg_id() -> str:
    """20 hex characters, like Zalo's ``63ecf43f0df7dba892e6``."""
    return secrets.token_hex(10)


def user_id_by_app(user_id: str) -> str:
    """A stable per-app alias of the user id (numeric string, as Zalo's)."""
    return str(int(hashlib.sha256(user_id.encode()).hexdigest()[:15], 16))


def zns_received(sc: Scenario, phone: str, msg_id: str, tracking_id: str | None, delivery_ms: int,
                 now_ms: int) -> dict[str, Any]:
    message: dict[str, Any] = {"delivery_time": str(delivery_ms), "msg_id": msg_id}
    if tracking_id is not None:
        message["tracking_id"] = tracking_id
    return {
        "sender": {"id": sc.oa_id},
        "recipient": {"id": phone},
        "event_name": "user_received_message",
        "message": message,
        "app_id": sc.app_id,
        "timestamp": str(now_ms),
    }


def oa_received(sc: Scenario, user_id: str, msg_id: str, now_ms: int) -> dict[str, Any]:
    # OA receipts: the OA is the sender, the citizen the recipient (S6); no delivery_time,
    # which is how receivers tell them from ZNS receipts.
    return {
        "app_id": sc.app_id,
        "sender": {"id": sc.oa_id},
        "recipient": {"id": user_id},
        "user_id_by_app": user_id_by_app(user_id),
        "event_name": "user_received_message",
        "message": {"msg_id": msg_id},
        "timestamp": str(now_ms),
    }


def follow_event(sc: Scenario, event_name: str, user_id: str, now_ms: int) -> dict[str, Any]:
    return {
        "oa_id": sc.oa_id,
        "follower": {"id": user_id},
        "user_id_by_app": user_id_by_app(user_id),
        "event_name": event_name,
        "source": "oa_profile",
        "app_id": sc.app_id,
        "timestamp": str(now_ms),
    }


def user_text(sc: Scenario, user_id: str, text: str, now_ms: int) -> dict[str, Any]:
    return {
        "app_id": sc.app_id,
        "sender": {"id": user_id},
        "recipient": {"id": sc.oa_id},
        "user_id_by_app": user_id_by_app(user_id),
        "event_name": "user_send_text",
        "message": {"text": text, "msg_id": new_msg_id()},
        "timestamp": str(now_ms),
    }


def submit_info(sc: Scenario, user_id: str, info: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {
        "app_id": sc.app_id,
        "sender": {"id": user_id},
        "recipient": {"id": sc.oa_id},
        "user_id_by_app": user_id_by_app(user_id),
        "event_name": "user_submit_info",
        "info": info,
        "timestamp": str(now_ms),
    }


def default_info(name: str, phone: str) -> dict[str, Any]:
    """The S5 shape of a shared-info answer; callers may override any field."""
    return {
        "name": name,
        "phone": phone,
        "user_dob": "",
        "gender": "",
        "full_address": {"user_city": "Long An", "user_ward": "", "user_address": ""},
    }
