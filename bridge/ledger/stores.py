"""The dispatcher's durable stores, backed by the ledger: Zalo tokens and follower links."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, delete, func, select, text

from bridge.dispatch.tokens import TokenState
from bridge.ledger.admission import upsert
from bridge.ledger.engine import is_sqlite
from bridge.ledger.tables import follower_links, tokens
from bridge.phone import normalise_phone


class LedgerTokenStore:
    """`bridge.dispatch.tokens.TokenStore` in the ledger.

    Zalo refresh tokens are single-use: once rotated, the only copy is ours. So `save`
    returns only after the row is on disk — SQLite switches this one commit to
    synchronous=FULL (the rest of the ledger runs at NORMAL), PostgreSQL forces
    synchronous_commit for the transaction.
    """

    def __init__(self, engine: Engine, name: str = "zalo_oa",
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.name = name
        self._clock = clock

    def load(self) -> TokenState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.name == self.name)).first()
        if row is None:
            return None
        return TokenState(row.access_token, row.refresh_token, float(row.expires_at))

    def save(self, state: TokenState) -> None:
        sqlite = is_sqlite(self.engine)
        with self.engine.connect() as conn:
            # Outside any transaction (SQLite refuses to change it inside one).
            raw = conn.connection.driver_connection if sqlite else None
            if raw is not None:
                raw.execute("PRAGMA synchronous=FULL")
            try:
                with conn.begin():
                    if not sqlite:
                        conn.execute(text("SET LOCAL synchronous_commit = on"))
                    upsert(conn, tokens, {
                        "name": self.name, "access_token": state.access_token,
                        "refresh_token": state.refresh_token, "expires_at": state.expires_at,
                        "updated_at_ms": int(self._clock() * 1000)}, ["name"])
            finally:
                if raw is not None:
                    raw.execute("PRAGMA synchronous=NORMAL")


class LedgerFollowers:
    """`bridge.dispatch.dispatcher.FollowerLookup` plus the writes the webhook needs."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    def user_for_phone(self, phone: str) -> str | None:
        """The Zalo user most recently linked to this phone (84XXXXXXXXX), if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(follower_links.c.user_id)
                                .where(follower_links.c.phone == phone)
                                .order_by(follower_links.c.updated_at_ms.desc())
                                .limit(1)).scalar()

    def link(self, user_id: str, phone: str) -> None:
        normalised = normalise_phone(phone)
        if normalised is None:
            raise ValueError("not a Vietnamese mobile number")
        now = int(self._clock() * 1000)
        with self.engine.begin() as conn:
            existing = conn.execute(select(follower_links.c.linked_at_ms)
                                    .where(follower_links.c.user_id == user_id)).scalar()
            upsert(conn, follower_links, {"user_id": user_id, "phone": normalised,
                                          "linked_at_ms": existing or now, "updated_at_ms": now},
                   ["user_id"])

    def unlink(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(follower_links).where(follower_links.c.user_id == user_id))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(follower_links)).scalar_one())
