"""OA access and refresh tokens: access tokens live ``token_ttl_s``; refresh tokens rotate.

Each successful refresh invalidates the refresh token it used and issues a new one, as
Zalo does (zalo-api.md §4).  Access tokens issued earlier stay valid until they expire.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Callable, Literal

TokenCheck = Literal["ok", "unknown", "expired"]


@dataclass(frozen=True)
class Grant:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenStore:
    def __init__(self, refresh_token: str, ttl_s: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.ttl_s = ttl_s
        self.current_refresh = refresh_token
        self._used_refresh: set[str] = set()
        self._access: dict[str, float] = {}  # token -> expiry (clock seconds)
        self.issued = 0

    def check(self, token: str | None) -> TokenCheck:
        if not token:
            return "unknown"
        expiry = self._access.get(token)
        if expiry is None:
            return "unknown"
        return "ok" if self._clock() < expiry else "expired"

    def refresh(self, refresh_token: str) -> Grant | None:
        """Rotate: None when the token is unknown or already used."""
        if refresh_token != self.current_refresh:
            return None
        self._used_refresh.add(refresh_token)
        self.current_refresh = "sandbox-refresh-" + secrets.token_urlsafe(18)
        access = "sandbox-access-" + secrets.token_urlsafe(24)
        self._access[access] = self._clock() + self.ttl_s
        self.issued += 1
        return Grant(access, self.current_refresh, int(self.ttl_s))

    def was_used(self, refresh_token: str) -> bool:
        return refresh_token in self._used_refresh

    def expire_all(self) -> int:
        """Expire every access token now (they stay known, so callers get 'expired')."""
        now = self._clock()
        for token in self._access:
            self._access[token] = min(self._access[token], now)
        return len(self._access)
