"""The citizen side of the OA, assembled: webhook route, inbox, workers and handlers.

Usage (the bridge's HTTP server, `onestop-bridge run`)::

    citizen = Citizen.build(settings, ledger.engine, dispatcher)  # dispatcher.send_oa_message
    citizen.install(app)        # adds POST /webhook/zalo to the aiohttp application
    citizen.start()             # workers; re-queues events a previous run left unhandled
    ...
    citizen.stop()

Everything is in the ledger (migration v0002), so several `run` instances may share it;
per-citizen ordering then holds per instance (Zalo sends one citizen's events to one URL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import Engine

from bridge import metrics
from bridge.citizen.chat import Chat
from bridge.citizen.dossiers import DossierSource, make_source
from bridge.citizen.followers import FollowerFlow
from bridge.citizen.inbox import Inbox, InboxEvent
from bridge.citizen.linking import CodeSender, PhoneProof
from bridge.citizen.lookup import Lookup
from bridge.citizen.procedures import Catalogue, load_catalogue
from bridge.citizen.processor import Processor
from bridge.citizen.receipts import Receipts
from bridge.citizen.replies import OaSender, Replier
from bridge.citizen.signature import SignatureConfig
from bridge.citizen.store import CitizenStore
from bridge.citizen.webhook import Webhook
from bridge.ledger import LedgerFollowers
from bridge.settings import Settings
from bridge.templates import Renderer

log = logging.getLogger(__name__)
# A link is what a citizen sends by opening the receipt's QR code or pasting its URL:
# read as text too (its URL carries the dossier code).
_TEXT_EVENTS = ("user_send_text", "user_send_link")
INBOX_RETENTION_S = 30 * 86400.0   # handled events kept a month for audit, then forgotten


class Sender(OaSender, CodeSender, Protocol):
    """What the citizen side sends through (the dispatcher): OA replies and link codes."""


class Citizen:
    def __init__(self, settings: Settings, engine: Engine, sender: Sender, *,
                 dossiers: DossierSource | None = None, catalogue: Catalogue | None = None,
                 clock: Callable[[], float] = time.time, backoff_s: float = 1.0) -> None:
        self.settings = settings
        self.engine = engine
        self.store = CitizenStore(engine, clock)
        self.inbox = Inbox(engine, clock)
        self.followers = LedgerFollowers(engine, clock)
        self.dossiers = dossiers or make_source(settings, engine)
        self.catalogue = catalogue or load_catalogue(settings.oa.procedures_file)
        self.replier = Replier(sender, self.store)
        renderer = Renderer(settings.templates.version, ZoneInfo(settings.source.timezone),
                            settings.templates.lookup_url, settings.oa.oa_id)
        self.lookup = Lookup(settings, self.store, self.dossiers, self.replier, renderer)
        proof = PhoneProof(engine, sender, clock) if settings.oa.verify_shared_phone else None
        if proof is None:
            log.warning("oa.verify_shared_phone is off: a shared phone number is linked as "
                        "typed, so whoever types a citizen's number first gets that citizen's "
                        "open dossiers and notices (docs/runbook.md, Followers linking)")
        self.follow_flow = FollowerFlow(settings, self.store, self.followers, self.dossiers,
                                        self.lookup, self.replier, proof)
        self.chat = Chat(settings, self.store, self.lookup, self.catalogue, self.replier,
                         self.follow_flow.answer_code)
        self.receipts = Receipts(engine, self.store, self.followers, self.replier)
        self.processor = Processor(self.inbox, self.handle, settings.oa.webhook_workers,
                                   backoff_s=backoff_s)
        self.replier.stopping = self.processor.stopping
        signing = SignatureConfig(settings.zalo.app_id, settings.oa.oa_id,
                                  settings.zalo.oa_secret_key.get_secret_value(),
                                  settings.zalo.app_secret.get_secret_value())
        self.webhook = Webhook(signing, self.inbox, self.processor)
        self._timer: threading.Timer | None = None

    @classmethod
    def build(cls, settings: Settings, engine: Engine, sender: Sender, **kwargs: object) -> Citizen:
        return cls(settings, engine, sender, **kwargs)  # type: ignore[arg-type]

    # --- lifecycle -------------------------------------------------------------------------
    def install(self, app: web.Application) -> None:
        self.webhook.install(app)

    def start(self) -> int:
        self._housekeeping()
        return self.processor.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.processor.stop(timeout)
        self.webhook.close()

    def _housekeeping(self) -> None:
        """Hourly: prune old handled inbox rows; refresh the linked-followers gauge."""
        try:
            pruned = self.inbox.prune(INBOX_RETENTION_S)
            metrics.followers_linked.set(self.followers.count())
            if pruned:
                log.info("webhook inbox pruned", extra={"rows": pruned})
        except Exception:  # housekeeping must never stop the webhook
            log.warning("citizen housekeeping failed", exc_info=True)
        if not self.processor.stopping.is_set():
            self._timer = threading.Timer(3600.0, self._housekeeping)
            self._timer.daemon = True
            self._timer.start()

    # --- event routing (worker threads) ----------------------------------------------------
    def handle(self, event: InboxEvent, attempt: int) -> None:
        name, user, body = event.event_name, event.user_key, event.body
        if name == "follow":
            self.follow_flow.follow(user)
        elif name == "unfollow":
            self.follow_flow.unfollow(user)
        elif name == "user_submit_info":
            self.follow_flow.submit_info(user, body)
        elif name in _TEXT_EVENTS:
            text = _message_text(body.get("message"))
            if text:
                self.chat.handle(user, text)
        elif name == "user_received_message":
            self.receipts.handle(event, attempt)
        elif name == "user_send_sticker":  # a thumbs-up, a thank-you: a short answer
            self.chat.acknowledge(user)
        elif name.startswith("user_send_"):
            # A picture, sticker, location…: answer with the menus so the citizen can go on.
            self.chat.help(user)
        # Anything else (seen receipts, reactions, consent, ZNS template status…) is stored
        # in the inbox and acknowledged; nothing to say to the citizen.


def _message_text(message: Any) -> str:
    """The words of a text or link message: its text and any attachment's URL (§7.3)."""
    if not isinstance(message, dict):
        return ""
    parts = [message.get("text")]
    for attachment in message.get("attachments") or []:
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        if isinstance(payload, dict):
            parts += [payload.get("url"), payload.get("description")]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
