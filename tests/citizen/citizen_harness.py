"""Helpers for the citizen tests: a running citizen side: the Zalo sandbox, a ledger, the dispatcher and the webhook HTTP
server, wired as in production. Citizens are played through the sandbox's
``POST /sandbox/user-event`` (which signs and posts the webhook) and their replies read
from ``GET /sandbox/messages``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from events import event, present, row

from bridge import metrics
from bridge.citizen.service import Citizen
from bridge.dispatch import Dispatcher, sandbox_settings
from bridge.http import HttpServer
from bridge.ledger import Incoming, Ledger, StoredNotification
from bridge.phone import normalise_phone
from bridge.pipeline import Pipeline
from bridge.sandbox import SandboxHandle
from bridge.sandbox.signing import zalo_signature
from bridge.settings import Settings, load_settings
from waiting import wait_for

APP_ID, OA_SECRET, OA_ID = "sandbox-app", "sandbox-oa-secret", "1032900368640139458"
PHONE = "84909123456"          # BASE_ROW's "0909 123 456"
CODE = "000.00.23.H39-240612-0001"


def metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def citizen_settings(tmp_path: Path, sandbox_url: str, **oa: Any) -> Settings:
    settings = load_settings(None, ledger={"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
                             zalo={"app_id": APP_ID, "oa_secret_key": OA_SECRET},
                             oa={"oa_id": OA_ID, "lookup_max_attempts": 3,
                                 "centres": [{"name": "Trung tâm Phục vụ hành chính công tỉnh",
                                              "hotline": "0272 3550 055"}], **oa},
                             dispatch={"backoff_initial_s": 0.01, "backoff_max_s": 0.05})
    return sandbox_settings(settings, sandbox_url)


@dataclass
class Bridge:
    settings: Settings
    sandbox: SandboxHandle
    ledger: Ledger
    dispatcher: Dispatcher
    citizen: Citizen
    server: HttpServer
    sb: httpx.Client
    http: httpx.Client
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(self.settings)

    # --- playing a citizen ---------------------------------------------------------------
    def user_event(self, event_name: str, user_id: str, **extra: Any) -> dict[str, Any]:
        reply = self.sb.post("/sandbox/user-event", json={"event_name": event_name, "user_id": user_id,
                                                          **extra})
        reply.raise_for_status()
        result = reply.json()
        assert result["status"] == 200, result
        return result

    def say(self, user_id: str, text: str) -> None:
        self.user_event("user_send_text", user_id, text=text)

    def follow(self, user_id: str) -> None:
        """Follow the OA and take its two greetings."""
        seq = self.last_seq()
        self.user_event("follow", user_id)
        self.replies(user_id, 2, after=seq)

    def link(self, user_id: str, phone: str = PHONE) -> None:
        """Follow, then share the phone number the dossiers carry (`share`)."""
        self.follow(user_id)
        self.replies(user_id, 1, after=self.share(user_id, phone))  # "linked"

    def share(self, user_id: str, phone: str = PHONE, **info: Any) -> int:
        """Share `phone`, then type back the code Zalo delivered to it; returns the sequence
        after which the OA's answers to the code come."""
        seq = self.last_seq()
        self.user_event("user_submit_info", user_id, phone=phone, **info)
        self.replies(user_id, 1, after=seq)  # "a code was sent to …"
        code = self.link_code(phone, after=seq)
        seq = self.last_seq()
        self.say(user_id, code)
        return seq

    def link_code(self, phone: str = PHONE, *, after: int = 0) -> str:
        """The latest link code ZNS delivered to `phone` (what its owner reads in Zalo)."""
        sent = [m["template_data"]["otp"] for m in self.messages(
                    channel="zns", phone=present(normalise_phone(phone)), after=str(after))
                if "otp" in (m.get("template_data") or {})]
        assert sent, f"no link code was sent to {phone}"
        return sent[-1]

    def ask(self, user_id: str, text: str, count: int = 1) -> list[dict[str, Any]]:
        """Say `text`; the OA's `count` replies."""
        seq = self.last_seq()
        self.say(user_id, text)
        return self.replies(user_id, count, after=seq)

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        return self.sb.get("/sandbox/messages", params=filters).json()

    def replies(self, user_id: str, count: int, *, after: int = 0,
                timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait for `count` OA messages to the user after sequence `after`."""
        def found() -> list[dict[str, Any]]:
            got = self.messages(user_id=user_id, after=str(after))
            return got if len(got) >= count else []
        wait_for(found, timeout, 0.02, f"{count} OA replies to {user_id}")
        self.settle()
        return self.messages(user_id=user_id, after=str(after))

    def last_seq(self) -> int:
        got = self.messages()
        return got[-1]["seq"] if got else 0

    def settle(self, timeout: float = 10.0) -> None:
        wait_for(self.citizen.processor.idle, timeout, 0.01, "citizen workers idle")

    # --- the one-stop side -----------------------------------------------------------------
    def admit(self, *changes: dict[str, Any]) -> list[StoredNotification]:
        """Change events through the real pipeline into the ledger (as the consumer does)."""
        batch = []
        for change in changes:
            decoded = self.pipeline.decode(json.dumps(change))
            assert decoded is not None
            batch.append(Incoming(decoded, self.pipeline.event_id(decoded),
                                  self.pipeline.dossier_key(decoded)))
        return [s for a in self.ledger.admit(batch, self.pipeline.notify) for s in a.to_send]

    def dossier(self, **changes: Any) -> list[StoredNotification]:
        return self.admit(event("c", row(**changes)))

    def deliver(self, stored: StoredNotification) -> str:
        """Deliver like the consumer's settler; returns the channel used."""
        outcome = self.dispatcher.deliver(stored.notification)
        self.ledger.record_sent(stored.key, outcome)
        assert outcome.channel is not None
        return outcome.channel

    # --- raw webhook requests --------------------------------------------------------------
    def post(self, body: bytes | dict[str, Any], *, signature: str | None = "auto",
             first: str = APP_ID, secret: str = OA_SECRET, form: str = "mac",
             headers: dict[str, str] | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if signature == "auto":
            stamp = str(body.get("timestamp", "")) if isinstance(body, dict) else ""
            digest = zalo_signature(first, raw, stamp, secret)
            sent["X-ZEvent-Signature"] = f"mac={digest}" if form == "mac" else digest
        elif signature is not None:
            sent["X-ZEvent-Signature"] = signature
        return self.http.post("/webhook/zalo", content=raw, headers=sent)


def now_ms(offset_s: float = 0.0) -> str:
    """A webhook `timestamp` (epoch ms as a string), now or `offset_s` from now."""
    return str(int((time.time() + offset_s) * 1000))


def text_event(user_id: str, text: str, msg_id: str | None = None) -> dict[str, Any]:
    return {"app_id": APP_ID, "sender": {"id": user_id}, "recipient": {"id": OA_ID},
            "event_name": "user_send_text", "timestamp": now_ms(),
            "message": {"text": text, "msg_id": msg_id or f"m{time.time_ns()}"}}


MakeBridge = Callable[..., Bridge]
