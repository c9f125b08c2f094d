"""Ledger access for the citizen side: one short transaction per call, thread-safe.

Every value a citizen typed reaches the database as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from bridge.citizen.tables import (broadcast_sends, broadcasts, citizen_context, feedback,
                                   lookup_challenges, lookup_failures, lookup_grants, oa_outbox,
                                   rating_prompts, ratings, subscriptions)
from bridge.ledger.admission import insert_ignore, upsert
from bridge.ledger.tables import follower_links

Clock = Callable[[], float]
TOPICS = ("khan-cap", "tin-tuc")


@dataclass(frozen=True, slots=True)
class Challenge:
    codes: list[str]
    created_at_ms: int


class CitizenStore:
    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- replies ---------------------------------------------------------------------------
    def record_reply(self, message_id: str, user_id: str, purpose: str) -> None:
        with self.engine.begin() as conn:
            insert_ignore(conn, oa_outbox, {"message_id": message_id, "user_id": user_id,
                                            "purpose": purpose, "sent_at_ms": self.now_ms()},
                          ["message_id"])

    def mark_reply_delivered(self, message_id: str, at_ms: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(oa_outbox).where(oa_outbox.c.message_id == message_id)
                                  .values(delivered_at_ms=at_ms))
        return bool(result.rowcount)

    # --- lookups ---------------------------------------------------------------------------
    def linked_phone(self, user_id: str) -> str | None:
        """The phone (84…) this Zalo user shared and linked, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(follower_links.c.phone)
                                .where(follower_links.c.user_id == user_id)).scalar()

    def set_challenge(self, user_id: str, codes: list[str]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, lookup_challenges, {"user_id": user_id, "codes": json.dumps(codes),
                                             "created_at_ms": self.now_ms()}, ["user_id"])

    def challenge(self, user_id: str, max_age_s: float) -> Challenge | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(lookup_challenges)
                               .where(lookup_challenges.c.user_id == user_id)).first()
        if row is None or self.now_ms() - row.created_at_ms > max_age_s * 1000:
            return None
        return Challenge(json.loads(row.codes), row.created_at_ms)

    def clear_challenge(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(lookup_challenges).where(lookup_challenges.c.user_id == user_id))

    def add_failure(self, user_id: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(lookup_failures.insert().values(user_id=user_id, reason=reason,
                                                         at_ms=self.now_ms()))

    def failures_since(self, user_id: str, window_s: float) -> tuple[int, int | None]:
        """(failures within the window, time of the oldest of them in ms)."""
        since = self.now_ms() - int(window_s * 1000)
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(lookup_failures.c.at_ms))
                .where(lookup_failures.c.user_id == user_id, lookup_failures.c.at_ms >= since)
            ).one()
        return int(count), oldest

    def grant(self, user_id: str, codes: list[str]) -> None:
        now = self.now_ms()
        with self.engine.begin() as conn:
            for code in codes:
                upsert(conn, lookup_grants, {"user_id": user_id, "dossier_code": code,
                                             "granted_at_ms": now}, ["user_id", "dossier_code"])

    def granted(self, user_id: str, codes: list[str], max_age_s: float) -> set[str]:
        since = self.now_ms() - int(max_age_s * 1000)
        with self.engine.connect() as conn:
            return set(conn.execute(select(lookup_grants.c.dossier_code).where(
                lookup_grants.c.user_id == user_id, lookup_grants.c.dossier_code.in_(codes),
                lookup_grants.c.granted_at_ms >= since)).scalars())

    def set_context(self, user_id: str, code: str) -> None:
        with self.engine.begin() as conn:
            upsert(conn, citizen_context, {"user_id": user_id, "dossier_code": code,
                                           "updated_at_ms": self.now_ms()}, ["user_id"])

    def context(self, user_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(citizen_context.c.dossier_code)
                                .where(citizen_context.c.user_id == user_id)).scalar()

    # --- ratings and feedback ----------------------------------------------------------------
    def prompt_sent(self, code: str, user_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(rating_prompts.c.sent_at_ms).where(
                rating_prompts.c.dossier_code == code, rating_prompts.c.user_id == user_id)
            ).first() is not None

    def record_prompt(self, code: str, user_id: str, key: str | None, message_id: str) -> None:
        with self.engine.begin() as conn:
            insert_ignore(conn, rating_prompts, {
                "dossier_code": code, "user_id": user_id, "idempotency_key": key,
                "message_id": message_id, "sent_at_ms": self.now_ms()},
                ["dossier_code", "user_id"])

    def record_rating(self, code: str, user_id: str, score: int) -> None:
        with self.engine.begin() as conn:
            upsert(conn, ratings, {"dossier_code": code, "user_id": user_id, "score": score,
                                   "rated_at_ms": self.now_ms()}, ["dossier_code", "user_id"])

    def record_feedback(self, user_id: str, code: str | None, body: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(feedback.insert().values(user_id=user_id, dossier_code=code, text=body,
                                                  at_ms=self.now_ms()))

    def ratings_between(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ratings).where(ratings.c.rated_at_ms >= start_ms,
                                                      ratings.c.rated_at_ms < end_ms)
                                .order_by(ratings.c.rated_at_ms))
            return [dict(r._mapping) for r in rows]

    def feedback_between(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback).where(feedback.c.at_ms >= start_ms,
                                                       feedback.c.at_ms < end_ms)
                                .order_by(feedback.c.at_ms, feedback.c.id))
            return [dict(r._mapping) for r in rows]

    # --- subscriptions and broadcasts ------------------------------------------------------
    def subscribe(self, user_id: str, topic: str) -> None:
        with self.engine.begin() as conn:
            insert_ignore(conn, subscriptions, {"user_id": user_id, "topic": topic,
                                                "subscribed_at_ms": self.now_ms()},
                          ["user_id", "topic"])

    def unsubscribe(self, user_id: str, topics: tuple[str, ...] = TOPICS) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(subscriptions).where(subscriptions.c.user_id == user_id,
                                                     subscriptions.c.topic.in_(topics)))

    def subscribers(self, topic: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(subscriptions.c.user_id)
                                     .where(subscriptions.c.topic == topic)
                                     .order_by(subscriptions.c.subscribed_at_ms,
                                               subscriptions.c.user_id)).scalars())

    def topics_of(self, user_id: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(subscriptions.c.topic)
                                    .where(subscriptions.c.user_id == user_id)).scalars())

    def open_broadcast(self, broadcast_id: str, topic: str, body: str) -> None:
        with self.engine.begin() as conn:
            insert_ignore(conn, broadcasts, {"id": broadcast_id, "topic": topic, "text": body,
                                             "created_at_ms": self.now_ms()}, ["id"])

    def broadcast_done(self, broadcast_id: str) -> set[str]:
        """Followers this broadcast already reached (a re-run skips them)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(broadcast_sends.c.user_id).where(
                broadcast_sends.c.broadcast_id == broadcast_id,
                broadcast_sends.c.result == "sent")).scalars())

    def record_broadcast_send(self, broadcast_id: str, user_id: str, result: str,
                              message_id: str | None) -> None:
        with self.engine.begin() as conn:
            upsert(conn, broadcast_sends, {"broadcast_id": broadcast_id, "user_id": user_id,
                                           "result": result, "message_id": message_id,
                                           "at_ms": self.now_ms()}, ["broadcast_id", "user_id"])
