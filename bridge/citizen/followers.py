"""Follow, phone sharing and unfollow.

`follow` → welcome with the three menus and a request to share the phone number;
`user_submit_info` → link the Zalo user to the normalised phone in the ledger (the
dispatcher then prefers the free OA channel for that phone) and confirm every open
dossier of that phone with its current status; `unfollow` → unlink and drop
subscriptions (Zalo would refuse messages to a non-follower anyway).
"""

from __future__ import annotations

import logging
from typing import Any

from bridge import metrics
from bridge.citizen import messages, wording
from bridge.citizen.dossiers import DossierSource
from bridge.citizen.lookup import Lookup
from bridge.citizen.replies import Replier
from bridge.citizen.store import CitizenStore
from bridge.ledger import LedgerFollowers
from bridge.phone import mask_phone, normalise_phone
from bridge.settings import Settings

log = logging.getLogger(__name__)


def shared_phone(body: dict[str, Any]) -> str | None:
    """The phone of a user_submit_info event; field sets differ by source (§7.3)."""
    info = body.get("info")
    if not isinstance(info, dict):
        return None
    for key in ("phone", "phone_number", "user_phone"):
        value = info.get(key)
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value)
    return None


class FollowerFlow:
    def __init__(self, settings: Settings, store: CitizenStore, followers: LedgerFollowers,
                 dossiers: DossierSource, lookup: Lookup, replier: Replier) -> None:
        self.settings = settings
        self.store = store
        self.followers = followers
        self.dossiers = dossiers
        self.lookup = lookup
        self.replier = replier

    def follow(self, user_id: str) -> None:
        welcome = messages.with_buttons(wording.welcome(self.settings),
                                        wording.menu_buttons(self.settings))
        self.replier.reply(user_id, welcome, "welcome")
        if self.store.linked_phone(user_id) is None:
            self.ask_phone(user_id)

    def ask_phone(self, user_id: str) -> None:
        card = messages.request_user_info(wording.SHARE_TITLE, wording.SHARE_SUBTITLE,
                                          self.settings.oa.share_info_image_url)
        self.replier.reply(user_id, card, "request_user_info")

    def unfollow(self, user_id: str) -> None:
        self.followers.unlink(user_id)
        self.store.unsubscribe(user_id)
        self._gauge()
        log.info("follower left; unlinked", extra={"event": "unfollow"})

    def submit_info(self, user_id: str, body: dict[str, Any]) -> None:
        raw = shared_phone(body)
        phone = normalise_phone(raw) if raw is not None else None
        if phone is None:
            self.replier.reply(user_id, messages.text(wording.INVALID_PHONE), "link_invalid")
            return
        local = "0" + phone[2:]
        owner = self.followers.user_for_phone(phone)
        if owner is not None and owner != user_id:
            # Whoever shares a number second gets nothing of it: neither its dossiers nor,
            # by taking the link over, its owner's notices.
            log.warning("phone already linked to another follower; link refused",
                        extra={"phone": mask_phone(phone)})
            taken = wording.phone_taken(local, wording.hotline(self.settings))
            self.replier.reply(user_id, messages.text(taken),
                               "link_refused")
            return
        self.followers.link(user_id, phone)
        self._gauge()
        log.info("follower linked", extra={"phone": mask_phone(phone)})
        open_dossiers = self.dossiers.open_for_phone(phone)
        self.replier.reply(user_id, messages.text(wording.linked(local, len(open_dossiers))),
                           "linked")
        self.lookup.confirm_open(user_id, open_dossiers[:10])

    def _gauge(self) -> None:
        try:
            metrics.followers_linked.set(self.followers.count())
        except Exception:  # a metric must never fail the event
            log.debug("followers gauge not updated", exc_info=True)
