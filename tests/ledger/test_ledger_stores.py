"""The dispatcher's durable stores: tokens survive a restart, followers resolve by phone."""

from __future__ import annotations

import pytest

from bridge.dispatch.tokens import TokenState
from bridge.ledger import Ledger, LedgerFollowers, LedgerTokenStore


def test_rotated_token_is_there_after_reopening(ledger_url: str) -> None:
    first = Ledger.open(ledger_url)
    store = LedgerTokenStore(first.engine)
    assert store.load() is None
    store.save(TokenState("access-1", "refresh-1", 1000.0))
    store.save(TokenState("access-2", "refresh-2", 2000.0))
    first.close()
    reopened = Ledger.open(ledger_url)
    try:
        state = LedgerTokenStore(reopened.engine).load()
        assert state == TokenState("access-2", "refresh-2", 2000.0)
        assert "refresh-2" not in repr(state)
        if reopened.engine.dialect.name == "sqlite":
            with reopened.engine.connect() as conn:
                # The FULL-sync commit for tokens does not leak into the rest of the ledger.
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    finally:
        reopened.close()


def test_followers_resolve_by_normalised_phone(ledger: Ledger) -> None:
    followers = LedgerFollowers(ledger.engine)
    assert followers.user_for_phone("84909123456") is None
    followers.link("zalo-user-1", "0909 123 456")
    assert followers.user_for_phone("84909123456") == "zalo-user-1"
    followers.link("zalo-user-1", "+84 912 345 678")  # the follower shared a new number
    assert followers.user_for_phone("84909123456") is None
    assert followers.user_for_phone("84912345678") == "zalo-user-1"
    assert followers.count() == 1
    followers.unlink("zalo-user-1")
    assert followers.user_for_phone("84912345678") is None
    with pytest.raises(ValueError):
        followers.link("zalo-user-2", "12345")


def test_a_new_sqlite_ledger_is_readable_by_its_owner_only(tmp_path, caplog) -> None:
    """It holds the OA's access and refresh tokens and citizens' phone numbers."""
    import os
    import stat

    from bridge.ledger import Ledger

    old = os.umask(0o022)
    try:
        ledger = Ledger.open(f"sqlite:///{tmp_path / 'new' / 'ledger.db'}")
        ledger.close()
    finally:
        os.umask(old)
    files = sorted((tmp_path / "new").iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), \
        [(f.name, oct(f.stat().st_mode)) for f in files]
    shared = tmp_path / "shared.db"
    shared.touch(mode=0o644)
    shared.chmod(0o644)
    Ledger.open(f"sqlite:///{shared}").close()
    assert "is readable by other users" in caplog.text and stat.S_IMODE(shared.stat().st_mode) == 0o644
