"""Follow, phone sharing and unfollow.

`follow` → welcome with the three menus and a request to share the phone number;
`user_submit_info` → send a code to the shared number (bridge/citizen/linking.py) and, once
the follower types it back, link the Zalo user to the number in the ledger (the
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
from bridge.citizen.linking import CODE_TTL_S, TRIES, PhoneProof
from bridge.citizen.lookup import Lookup
from bridge.citizen.replies import Replier
from bridge.citizen.store import CitizenStore
from bridge.errors import BridgeError, NightWindow, RecipientError
from bridge.ledger import LedgerFollowers
from bridge.phone import mask_phone, normalise_phone
from bridge.settings import Settings

log = logging.getLogger(__name__)


_STARTED = {"sent": "link code sent", "recent": "link code sent moments ago; not sent again",
            "busy": "link code not sent: the account or the number had its codes for now"}


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
                 dossiers: DossierSource, lookup: Lookup, replier: Replier,
                 proof: PhoneProof | None) -> None:
        self.settings = settings
        self.proof = proof  # None: a shared number is linked as typed (oa.verify_shared_phone)
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
        if self._taken(user_id, phone):
            return
        if self.proof is None or self.followers.user_for_phone(phone) == user_id:
            self._link(user_id, phone)
            return
        local = "0" + phone[2:]
        try:
            started = self.proof.start(user_id, phone)
        except BridgeError as exc:
            log.warning("link code not sent", extra={"phone": mask_phone(phone), "code": exc.code,
                                                     "error_class": exc.error_class})
            why = "night" if isinstance(exc, NightWindow) else \
                "no_zalo" if isinstance(exc, RecipientError) else "other"
            text = wording.code_not_sent(local, why, wording.hotline(self.settings))
            self.replier.reply(user_id, messages.text(text), "link_code_not_sent")
            return
        log.info(_STARTED[started], extra={"phone": mask_phone(phone)})
        text = (wording.code_sent(local, CODE_TTL_S // 60) if started == "sent"
                else wording.code_recent(local) if started == "recent"
                else wording.code_busy(wording.hotline(self.settings)))
        self.replier.reply(user_id, messages.text(text), "link_code")

    def answer_code(self, user_id: str, code: str) -> bool:
        """Six digits from the chat: the link code, if one is pending for this follower."""
        answer = self.proof.answer(user_id, code) if self.proof is not None else None
        if answer is None:
            return False
        # Proved, but linked by its owner meanwhile: "taken", refused like any second account.
        taken = answer.outcome == "proved" and self._taken(user_id, answer.phone)
        metrics.link_codes.labels(outcome="taken" if taken else answer.outcome).inc()
        if answer.outcome == "proved":
            if not taken:
                self._link(user_id, answer.phone)
        elif answer.outcome == "wrong":
            self.replier.reply(user_id, messages.text(wording.code_wrong(answer.tries_left)),
                               "link_code_wrong")
        else:
            text = wording.code_over(answer.outcome == "expired", TRIES)
            self.replier.reply(user_id, messages.text(text), "link_code_over")
            self.ask_phone(user_id)
        return True

    def _taken(self, user_id: str, phone: str) -> bool:
        """Linked to another follower: whoever shares a number second gets nothing of it —
        neither its dossiers nor, by taking the link over, its owner's notices."""
        owner = self.followers.user_for_phone(phone)
        if owner is None or owner == user_id:
            return False
        log.warning("phone already linked to another follower; link refused",
                    extra={"phone": mask_phone(phone)})
        taken = wording.phone_taken("0" + phone[2:], wording.hotline(self.settings))
        self.replier.reply(user_id, messages.text(taken), "link_refused")
        return True

    def _link(self, user_id: str, phone: str) -> None:
        self.followers.link(user_id, phone)
        self._gauge()
        log.info("follower linked", extra={"phone": mask_phone(phone)})
        open_dossiers = self.dossiers.open_for_phone(phone)
        self.replier.reply(user_id, messages.text(wording.linked("0" + phone[2:], len(open_dossiers))),
                           "linked")
        self.lookup.confirm_open(user_id, open_dossiers[:10])

    def _gauge(self) -> None:
        try:
            metrics.followers_linked.set(self.followers.count())
        except Exception:  # a metric must never fail the event
            log.debug("followers gauge not updated", exc_info=True)
