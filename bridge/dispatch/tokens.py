"""The Zalo OA access token: refreshed ahead of expiry, once on AuthError, single flight.

Zalo's refresh tokens are single-use and rotate (zalo-api.md §4): the moment a refresh
succeeds, the old refresh token is dead. If the new one is lost — a crash after using the
new access token but before saving — the province is locked out until an admin
re-authorises the OA. Hence the one rule of this module:

    the rotated state is saved (TokenStore.save) BEFORE its access token is used.

A save that fails keeps the new state *pending* in memory (never used) and retries the
save on the next call; the old access token stays in use while it is still valid.

Several bridge instances may share one store: before refreshing, the manager re-reads the
store and adopts a newer state written by another instance instead of spending a refresh
token that instance has already rotated.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from bridge import metrics
from bridge.errors import AuthError, BridgeError, ConfigError, RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TokenState:
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds

    def __repr__(self) -> str:  # never print a token
        return f"TokenState(expires_at={self.expires_at:.0f})"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the token endpoint answered."""

    access_token: str
    refresh_token: str
    expires_in: float

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in={self.expires_in:.0f})"


class TokenStore(Protocol):
    def load(self) -> TokenState | None: ...

    def save(self, state: TokenState) -> None: ...


class MemoryTokenStore:
    def __init__(self, state: TokenState | None = None) -> None:
        self._state = state
        self.saves = 0

    def load(self) -> TokenState | None:
        return self._state

    def save(self, state: TokenState) -> None:
        self._state = state
        self.saves += 1


class FileTokenStore:
    """A JSON file, replaced atomically (write, fsync, rename, fsync dir), mode 0600."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> TokenState | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return TokenState(str(data["access_token"]), str(data["refresh_token"]),
                          float(data["expires_at"]))

    def save(self, state: TokenState) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(state), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class TokenPersistError(RetryableError):
    """The rotated token could not be saved; it is kept pending and not used."""


Refresher = Callable[[str], TokenGrant]


class TokenManager:
    """Thread-safe holder of the current access token."""

    def __init__(self, store: TokenStore, refresher: Refresher, *, initial_refresh_token: str = "",
                 refresh_ahead_s: float = 5 * 3600.0, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._refresher = refresher
        self._initial = initial_refresh_token
        self.refresh_ahead_s = refresh_ahead_s
        self._clock = clock
        self._lock = threading.RLock()
        self._state: TokenState | None = None
        self._pending: TokenState | None = None
        self._lifetime: float | None = None  # of the last grant, to cap refresh_ahead_s
        self._next_early_refresh = 0.0  # after a failed early refresh, wait before retrying
        self.early_retry_s = 60.0
        # A refresh token Zalo refused for good: not offered again (every delivery would
        # otherwise cost one more doomed OAuth call) until the store holds another one.
        self._dead_refresh: str | None = None

    # --- public -----------------------------------------------------------------------
    def access_token(self) -> str:
        """A token fit to use now, refreshing first when it is missing or due."""
        with self._lock:
            state = self._current()
            if self._pending is not None:
                try:
                    return self._persist_pending()
                except TokenPersistError:
                    if self._valid(state, ahead=0.0):
                        return state.access_token
                    raise
            if self._valid(state, ahead=self._ahead()):
                return state.access_token
            if self._clock() < self._next_early_refresh and self._valid(state, ahead=0.0):
                return state.access_token
            return self._refresh_due(state)

    def refresh_after_auth_error(self, rejected: str) -> str:
        """Zalo refused `rejected`: refresh unless another thread or instance already did."""
        with self._lock:
            state = self._current()
            if self._pending is not None:
                return self._persist_pending()
            if state.access_token not in ("", rejected):
                return state.access_token
            stored = self._load_store()
            if stored is not None and stored.access_token not in ("", rejected) \
                    and self._valid(stored, ahead=0.0):
                self._adopt(stored)
                return stored.access_token
            if stored is not None and stored.refresh_token != state.refresh_token:
                state = stored
            return self._refresh(state)

    def call(self, fn: Callable[[str], T], *,
             on_auth_error: Callable[[AuthError], None] | None = None) -> T:
        """Run `fn(token)`; on AuthError refresh once and run it once more."""
        token = self.access_token()
        try:
            return fn(token)
        except AuthError as exc:
            if on_auth_error is not None:
                on_auth_error(exc)
            log.info("access token refused, refreshing", extra={"code": exc.code})
            return fn(self.refresh_after_auth_error(token))

    def refused(self) -> bool:
        """Zalo refused the current refresh token for good: only re-consent helps, however
        long the stored access token seems to last. An admin's new seed in the store ends it."""
        with self._lock:
            if self._dead_refresh is None:
                return False
            current = self._load_store() or self._state
            return current is not None and current.refresh_token == self._dead_refresh

    @property
    def expires_at(self) -> float | None:
        return self._state.expires_at if self._state else None

    # --- internals (caller holds the lock) ----------------------------------------------
    def _valid(self, state: TokenState, *, ahead: float) -> bool:
        return bool(state.access_token) and self._clock() < state.expires_at - ahead

    def _ahead(self) -> float:
        # A short-lived token (sandbox, or a changed policy) must not refresh on every call.
        if self._lifetime is None:
            return self.refresh_ahead_s
        return min(self.refresh_ahead_s, self._lifetime / 2)

    def _load_store(self, *, required: bool = False) -> TokenState | None:
        try:
            return self._store.load()
        except Exception as exc:
            if required:
                raise TokenPersistError(f"token store unreadable: {type(exc).__name__}") from exc
            log.warning("token store unreadable; using the in-memory token",
                        extra={"error": type(exc).__name__})
            return None

    def _current(self) -> TokenState:
        if self._state is None:
            stored = self._load_store(required=True)
            if stored is None:
                if not self._initial:
                    raise ConfigError("no Zalo refresh token: set zalo.refresh_token or seed the "
                                      "token store")
                stored = TokenState("", self._initial, 0.0)
            self._adopt(stored)
        assert self._state is not None
        return self._state

    def _refresh_due(self, state: TokenState) -> str:
        # Another instance sharing the store may have rotated already.
        stored = self._load_store()
        if stored is not None and stored != state:
            self._adopt(stored)
            if self._valid(stored, ahead=self._ahead()):
                return stored.access_token
            state = stored
        try:
            return self._refresh(state)
        except (RetryableError, ConfigError):
            # Refreshing ahead failed; the current token is still good for a while.
            if self._valid(state, ahead=0.0):
                self._next_early_refresh = self._clock() + self.early_retry_s
                log.warning("early token refresh failed; using the current token until expiry")
                return state.access_token
            raise

    def _refresh(self, state: TokenState) -> str:
        if state.refresh_token == self._dead_refresh:
            raise ConfigError("Zalo refused the refresh token; an admin must re-authorise the OA "
                              "and seed the token store")
        try:
            grant = self._refresher(state.refresh_token)
        except BridgeError as exc:
            metrics.token_refresh.labels(result="failed").inc()
            if isinstance(exc, ConfigError):
                self._dead_refresh = state.refresh_token
            raise
        self._lifetime = grant.expires_in
        self._pending = TokenState(grant.access_token, grant.refresh_token,
                                   self._clock() + grant.expires_in)
        token = self._persist_pending()
        metrics.token_refresh.labels(result="ok").inc()
        log.info("Zalo access token refreshed", extra={"expires_at": self._state.expires_at
                                                       if self._state else None})
        return token

    def _persist_pending(self) -> str:
        """Save the pending state, then (only then) make it current; return its token."""
        pending = self._pending
        assert pending is not None
        try:
            self._store.save(pending)
        except Exception as exc:
            metrics.token_refresh.labels(result="persist_failed").inc()
            log.error("could not persist the rotated Zalo refresh token; not using it",
                      extra={"error": type(exc).__name__})
            raise TokenPersistError("rotated Zalo token could not be saved; kept pending") from exc
        self._pending = None
        self._adopt(pending)
        return pending.access_token

    def _adopt(self, state: TokenState) -> None:
        self._state = state
        metrics.token_expiry.set(state.expires_at)
