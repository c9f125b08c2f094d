"""The dispatcher's durable stores, backed by the ledger: Zalo tokens and follower links."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from sqlalchemy import Engine, delete, func, select, text

from bridge.dispatch.tokens import TokenState
from bridge.ledger.admission import upsert
from bridge.ledger.engine import is_sqlite, reader
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
        with reader(self.engine) as conn:
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


class _PhoneIndex:
    """phone → most recently linked user, shared by every LedgerFollowers of one engine.

    The dispatcher asks once per notification; a SQL read each time costs more than
    the rest of the plan. Writes through LedgerFollowers invalidate it at once; writes
    by another process show up within `ttl_s`.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.lock = threading.Lock()
        self.users: dict[str, str] | None = None
        self.loaded_at = 0.0

    def get(self, engine: Engine, phone: str) -> str | None:
        with self.lock:
            if self.users is None or time.monotonic() - self.loaded_at > self.ttl_s:
                with reader(engine) as conn:
                    rows = conn.execute(select(follower_links.c.phone, follower_links.c.user_id)
                                        .order_by(follower_links.c.updated_at_ms)).all()
                self.users = {p: u for p, u in rows}  # the newest link of a phone wins
                self.loaded_at = time.monotonic()
            return self.users.get(phone)

    def invalidate(self) -> None:
        with self.lock:
            self.users = None


_INDEXES: weakref.WeakKeyDictionary[Engine, _PhoneIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


class LedgerFollowers:
    """`bridge.dispatch.dispatcher.FollowerLookup` plus the writes the webhook needs."""

    CACHE_TTL_S = 30.0

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock
        with _INDEXES_LOCK:
            self._index = _INDEXES.setdefault(engine, _PhoneIndex(self.CACHE_TTL_S))

    def user_for_phone(self, phone: str) -> str | None:
        """The Zalo user most recently linked to this phone (84XXXXXXXXX), if any."""
        return self._index.get(self.engine, phone)

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
        self._index.invalidate()

    def unlink(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(follower_links).where(follower_links.c.user_id == user_id))
        self._index.invalidate()

    def count(self) -> int:
        with reader(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(follower_links)).scalar_one())
