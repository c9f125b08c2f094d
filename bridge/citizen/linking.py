"""Proof that a follower owns the phone number they share, before it is linked.

The number in `user_submit_info` comes from a form the user fills in. Linked as typed, it
would give whoever types a citizen's number first that citizen's open dossiers and, since
the dispatcher prefers a linked follower, every later notice; the owner would be refused.
So a six-digit code goes to the number by ZNS, which reaches only the Zalo account
registered with it, and the link is made when the follower types the code back in the
chat: within CODE_TTL_S, in at most TRIES tries. A follower who shares the same number
again within RESEND_AFTER_S gets no second code (a form sent twice). And whatever the
numbers, accounts and outcomes, an account and a number each get at most LIMITS codes
(3 an hour, 10 a day): guessing a number's code stays at 30 tries a day (a chance in
~33,000), and no one can flood a citizen's Zalo with codes or spend the ZNS quota on them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import Engine, delete, func, select, update

from bridge.citizen.tables import link_code_sends, link_codes
from bridge.ledger.admission import upsert

CODE_TTL_S = 600
TRIES = 3
RESEND_AFTER_S = 60
_HOUR_MS = 3_600_000
LIMITS = ((_HOUR_MS, 3), (24 * _HOUR_MS, 10))  # (window, codes) per account and per number
Started = Literal["sent", "recent", "busy"]


class CodeSender(Protocol):
    def send_link_code(self, phone: str, code: str, *, tracking: str) -> str: ...


@dataclass(frozen=True)
class Answer:
    outcome: Literal["proved", "wrong", "expired", "used_up"]
    phone: str
    tries_left: int = 0


class PhoneProof:
    def __init__(self, engine: Engine, sender: CodeSender, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.sender = sender
        self.clock = clock

    def start(self, user_id: str, phone: str) -> Started:
        """Send a code to `phone` for `user_id`: "sent"; "recent" when one went out to them
        moments ago (it stands); "busy" when the account or the number had its codes for
        the hour. Raises the sender's BridgeError when none could be sent."""
        now = self._now_ms()
        sends = link_code_sends.c
        with self.engine.begin() as conn:
            conn.execute(delete(link_code_sends).where(sends.sent_at_ms < now - 24 * _HOUR_MS))
            row = conn.execute(select(link_codes).where(link_codes.c.user_id == user_id)).first()
            if row is not None and row.phone == phone and now - row.sent_at_ms < RESEND_AFTER_S * 1000:
                return "recent"
            for who in (sends.user_id == user_id, sends.phone == phone):
                for window_ms, most in LIMITS:
                    count = conn.execute(select(func.count()).select_from(link_code_sends).where(
                        who, sends.sent_at_ms > now - window_ms)).scalar_one()
                    if count >= most:
                        return "busy"
            conn.execute(link_code_sends.insert().values(user_id=user_id, phone=phone,
                                                         sent_at_ms=now))
        code = f"{secrets.randbelow(10 ** 6):06d}"
        self.sender.send_link_code(phone, code, tracking=f"link-{uuid.uuid4().hex[:16]}")
        with self.engine.begin() as conn:  # a new code replaces any earlier one
            upsert(conn, link_codes, {
                "user_id": user_id, "phone": phone, "code_hash": _digest(user_id, code),
                "tries_left": TRIES, "sent_at_ms": now,
                "expires_at_ms": now + CODE_TTL_S * 1000}, ["user_id"])
        return "sent"

    def answer(self, user_id: str, code: str) -> Answer | None:
        """The follower typed six digits: None when no code is pending for them."""
        with self.engine.begin() as conn:
            row = conn.execute(select(link_codes).where(link_codes.c.user_id == user_id)).first()
            if row is None:
                return None
            mine = link_codes.c.user_id == user_id
            if self._now_ms() > row.expires_at_ms:
                conn.execute(delete(link_codes).where(mine))
                return Answer("expired", row.phone)
            if hmac.compare_digest(_digest(user_id, code), row.code_hash):
                conn.execute(delete(link_codes).where(mine))
                return Answer("proved", row.phone)
            left = row.tries_left - 1
            if left <= 0:
                conn.execute(delete(link_codes).where(mine))
                return Answer("used_up", row.phone)
            conn.execute(update(link_codes).where(mine).values(tries_left=left))
            return Answer("wrong", row.phone, left)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _digest(user_id: str, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()
