"""Token lifecycle: refresh ahead, refresh once on AuthError, persist before use, single flight."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from dispatch_fakes import FakeClock
from events import present

from bridge import metrics
from bridge.dispatch.tokens import (
    FileTokenStore, MemoryTokenStore, TokenGrant, TokenManager, TokenPersistError, TokenState,
)
from bridge.errors import AuthError, ConfigError, RetryableError, TransportError


class Oauth:
    """A refresher that rotates like Zalo: each refresh token works once."""

    def __init__(self, lifetime: float = 90_000.0, delay: float = 0.0) -> None:
        self.current = "RT-0"
        self.n = 0
        self.lifetime = lifetime
        self.delay = delay
        self.fail_with: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, refresh_token: str) -> TokenGrant:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if self.fail_with is not None:
                raise self.fail_with
            if refresh_token != self.current:
                raise ConfigError("oauth error -14014: Invalid refresh token", code=-14014)
            self.n += 1
            self.current = f"RT-{self.n}"
            return TokenGrant(f"AT-{self.n}", self.current, self.lifetime)


def _manager(store: object, oauth: Oauth, clock: FakeClock, **kw: float) -> TokenManager:
    return TokenManager(store, oauth, initial_refresh_token="RT-0",  # type: ignore[arg-type]
                        refresh_ahead_s=kw.pop("ahead", 3600.0), clock=clock.time)


def _count(result: str) -> float:
    return metrics.token_refresh.labels(result=result)._value.get()


def test_first_use_refreshes_from_the_configured_token_and_saves_it() -> None:
    clock, oauth, store = FakeClock(), Oauth(), MemoryTokenStore()
    ok_before = _count("ok")
    tokens = _manager(store, oauth, clock)
    assert tokens.access_token() == "AT-1"
    assert store.load() == TokenState("AT-1", "RT-1", clock.time() + 90_000)
    assert tokens.access_token() == "AT-1" and oauth.n == 1
    assert _count("ok") - ok_before == 1
    assert metrics.token_expiry._value.get() == pytest.approx(clock.time() + 90_000)


def test_store_wins_over_configured_refresh_token() -> None:
    clock, oauth = FakeClock(), Oauth()
    oauth.current = "RT-stored"
    store = MemoryTokenStore(TokenState("", "RT-stored", 0.0))
    assert _manager(store, oauth, clock).access_token() == "AT-1"


def test_refreshes_ahead_of_expiry() -> None:
    clock, oauth, store = FakeClock(), Oauth(), MemoryTokenStore()
    tokens = _manager(store, oauth, clock, ahead=3600.0)
    tokens.access_token()
    clock.advance(90_000 - 3601)
    assert tokens.access_token() == "AT-1"
    clock.advance(2)
    assert tokens.access_token() == "AT-2"
    assert store.load().refresh_token == "RT-2"  # type: ignore[union-attr]


def test_short_lived_tokens_do_not_refresh_on_every_call() -> None:
    clock, oauth = FakeClock(), Oauth(lifetime=600.0)  # 10 min tokens, 1 h refresh-ahead
    tokens = _manager(MemoryTokenStore(), oauth, clock, ahead=3600.0)
    for _ in range(10):
        tokens.access_token()
    assert oauth.n == 1
    clock.advance(301)
    assert tokens.access_token() == "AT-2"


def test_failed_early_refresh_keeps_the_valid_token() -> None:
    clock, oauth = FakeClock(), Oauth()
    tokens = _manager(MemoryTokenStore(), oauth, clock, ahead=3600.0)
    tokens.access_token()
    clock.advance(90_000 - 1000)
    oauth.fail_with = TransportError("oauth host down")
    assert tokens.access_token() == "AT-1"
    oauth.fail_with = None
    clock.advance(120)  # after the back-off the next call refreshes
    assert tokens.access_token() == "AT-2"
    clock.advance(90_000)
    oauth.fail_with = TransportError("down again")
    with pytest.raises(TransportError):  # expired and no refresh: nothing to use
        tokens.access_token()


def test_auth_error_refreshes_once_and_retries_once() -> None:
    clock, oauth = FakeClock(), Oauth()
    tokens = _manager(MemoryTokenStore(), oauth, clock)
    seen: list[str] = []
    refused: list[AuthError] = []

    def call(token: str) -> str:
        seen.append(token)
        if token == "AT-1":
            raise AuthError("zns error -124", code=-124)
        return "sent"

    assert tokens.call(call, on_auth_error=refused.append) == "sent"
    assert seen == ["AT-1", "AT-2"] and [e.code for e in refused] == [-124]

    def always_refused(token: str) -> str:
        seen.append(token)
        raise AuthError("-216", code=-216)

    seen.clear()
    with pytest.raises(AuthError):
        tokens.call(always_refused)
    assert seen == ["AT-2", "AT-3"]  # one refresh, one retry, no loop


def test_dead_refresh_token_is_a_config_error() -> None:
    clock, oauth = FakeClock(), Oauth()
    oauth.current = "RT-other"
    with pytest.raises(ConfigError):
        _manager(MemoryTokenStore(), oauth, clock).access_token()
    with pytest.raises(ConfigError, match="refresh token"):
        TokenManager(MemoryTokenStore(), oauth, clock=clock.time).access_token()


def test_dead_refresh_token_is_not_offered_again_until_reseeded() -> None:
    clock, oauth = FakeClock(), Oauth()
    oauth.current = "RT-new"  # an admin re-authorised; our RT-0 is dead
    calls: list[str] = []

    def refresher(rt: str) -> TokenGrant:
        calls.append(rt)
        return oauth(rt)

    store = MemoryTokenStore()
    tokens = TokenManager(store, refresher, initial_refresh_token="RT-0", clock=clock.time)
    for _ in range(5):
        with pytest.raises(ConfigError):
            tokens.access_token()
    assert calls == ["RT-0"]  # one doomed OAuth call, not one per delivery
    store.save(TokenState("", "RT-new", 0.0))  # the admin seeds the store
    assert tokens.access_token() == "AT-1" and calls == ["RT-0", "RT-new"]


def test_a_refused_refresh_is_reported_though_the_stored_token_looks_valid() -> None:
    """What /readyz asks: the app secret was rotated, Zalo refuses the access token and then
    the refresh token, while the stored expiry says hours are left."""
    clock, oauth = FakeClock(), Oauth()
    oauth.current = "RT-new"
    store = MemoryTokenStore(TokenState("AT-old", "RT-0", clock.time() + 90_000))
    tokens = TokenManager(store, oauth, clock=clock.time)
    assert tokens.access_token() == "AT-old" and not tokens.refused()
    with pytest.raises(ConfigError):
        tokens.refresh_after_auth_error("AT-old")
    assert tokens.refused()
    store.save(TokenState("", "RT-new", 0.0))  # the admin seeds the store
    assert not tokens.refused() and tokens.refresh_after_auth_error("AT-old") == "AT-1"


class FailingStore(MemoryTokenStore):
    """The kill point: the rotated token cannot be saved (disk full, DB down)."""

    def __init__(self, state: TokenState | None = None) -> None:
        super().__init__(state)
        self.fail = True

    def save(self, state: TokenState) -> None:
        if self.fail:
            raise OSError("disk full")
        super().save(state)


def test_rotated_token_is_never_used_before_it_is_saved() -> None:
    clock, oauth = FakeClock(), Oauth()
    store = FailingStore()
    tokens = _manager(store, oauth, clock)
    failed_before = _count("persist_failed")
    used: list[str] = []
    with pytest.raises(TokenPersistError) as info:
        tokens.call(lambda token: used.append(token))
    assert isinstance(info.value, RetryableError)  # the message goes to the retry topic
    assert used == [] and store.load() is None and oauth.n == 1
    assert _count("persist_failed") - failed_before == 1
    # The new pair is kept pending, not lost: once the store works it is saved, then used,
    # without spending the (already rotated) old refresh token again.
    store.fail = False

    def use(token: str) -> str:
        used.append(token)
        return token

    assert tokens.call(use) == "AT-1"
    saved = present(store.load())
    assert (saved.access_token, saved.refresh_token) == ("AT-1", "RT-1")
    assert saved.expires_at == pytest.approx(clock.time() + 90_000)
    assert oauth.n == 1


def test_save_failure_on_early_refresh_keeps_using_the_old_token() -> None:
    clock, oauth = FakeClock(), Oauth()
    store = FailingStore()
    store.fail = False
    tokens = _manager(store, oauth, clock, ahead=3600.0)
    tokens.access_token()
    store.fail = True
    clock.advance(90_000 - 100)  # due for an early refresh
    assert tokens.access_token() == "AT-1"  # AT-2 exists but is not saved: not used
    assert store.load().access_token == "AT-1"  # type: ignore[union-attr]
    store.fail = False
    assert tokens.access_token() == "AT-2"
    assert store.load().refresh_token == "RT-2" and oauth.n == 2  # type: ignore[union-attr]


def test_auth_error_with_unsaved_rotation_does_not_spend_the_old_refresh_token() -> None:
    clock, oauth = FakeClock(), Oauth()
    store = FailingStore()
    store.fail = False
    tokens = _manager(store, oauth, clock)
    tokens.access_token()
    store.fail = True
    with pytest.raises(TokenPersistError):
        tokens.call(lambda t: (_ for _ in ()).throw(AuthError("-216", code=-216)))
    store.fail = False
    assert tokens.call(lambda t: t) == "AT-2" and oauth.n == 2


def test_single_flight_refresh_under_threads() -> None:
    clock, oauth = FakeClock(), Oauth(delay=0.05)
    tokens = _manager(MemoryTokenStore(), oauth, clock)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(tokens.access_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["AT-1"] * 8 and oauth.n == 1


def test_concurrent_auth_errors_refresh_once() -> None:
    clock, oauth = FakeClock(), Oauth(delay=0.02)
    tokens = _manager(MemoryTokenStore(), oauth, clock)
    tokens.access_token()
    barrier = threading.Barrier(6)
    got: list[str] = []

    def call(token: str) -> str:
        if token == "AT-1":
            raise AuthError("-220", code=-220)
        return token

    def worker() -> None:
        barrier.wait()
        got.append(tokens.call(call))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["AT-2"] * 6 and oauth.n == 2


def test_adopts_a_rotation_made_by_another_instance() -> None:
    clock, oauth = FakeClock(), Oauth()
    store = MemoryTokenStore()
    a = _manager(store, oauth, clock, ahead=3600.0)
    b = _manager(store, oauth, clock, ahead=3600.0)
    assert a.access_token() == "AT-1" and b.access_token() == "AT-1"
    clock.advance(90_000 - 100)
    assert a.access_token() == "AT-2"
    assert b.access_token() == "AT-2"  # read from the shared store, RT-1 not replayed
    assert oauth.n == 2


def test_file_store_is_private_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state" / "zalo-token.json"
    store = FileTokenStore(path)
    assert store.load() is None
    state = TokenState("AT", "RT", 123.5)
    store.save(state)
    store.save(TokenState("AT2", "RT2", 456.0))
    assert store.load() == TokenState("AT2", "RT2", 456.0)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["zalo-token.json"]  # no temp left
    assert "RT2" not in repr(store.load())  # tokens never in reprs (hence logs)
