"""`run` waits for its ledger database instead of exiting: at boot, or during the database's
maintenance, systemd would otherwise give up after ten quick restarts."""

from __future__ import annotations

import threading

import psycopg2
import pytest
import sqlalchemy as sa

from bridge import run
from bridge.errors import ConfigError
from bridge.settings import Settings, load_settings


def unreachable(text: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("connect", {}, psycopg2.OperationalError(text))


def shared_ledger() -> Settings:
    return load_settings(None, ledger={"url": "postgresql://bridge@db.example/ledger"})


def test_an_unreachable_ledger_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def bridge(_settings: object) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise unreachable('connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused')
        return "bridge"

    monkeypatch.setattr(run, "Bridge", bridge)
    opened = run.open_bridge(shared_ledger(), threading.Event(), first_wait_s=0.01)
    assert opened == "bridge" and len(attempts) == 3


def test_a_stop_while_waiting_ends_without_a_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    def bridge(_settings: object) -> None:
        raise unreachable("Connection refused")

    monkeypatch.setattr(run, "Bridge", bridge)
    stop = threading.Event()
    stop.set()
    assert run.open_bridge(shared_ledger(), stop) is None


def test_a_refused_ledger_login_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def bridge(_settings: object) -> None:
        raise unreachable('connection to server at "db", port 5432 failed: FATAL:  password '
                          'authentication failed for user "bridge"')

    monkeypatch.setattr(run, "Bridge", bridge)
    with pytest.raises(ConfigError, match="the database refused ledger.url: .*password authentication"):
        run.open_bridge(shared_ledger(), threading.Event(), first_wait_s=0.01)


def test_a_sqlite_ledger_that_cannot_be_opened_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    def bridge(_settings: object) -> None:  # a file: no server will come up
        raise sa.exc.OperationalError("connect", {}, Exception("unable to open database file"))

    monkeypatch.setattr(run, "Bridge", bridge)
    with pytest.raises(ConfigError, match="ledger.url: cannot open the SQLite ledger"):
        run.open_bridge(load_settings(None), threading.Event(), first_wait_s=0.01)


def test_run_never_logs_its_secrets_even_in_free_text(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`run` holds the Zalo app secret, the OA key, the SMS key and the ledger's password: an
    error that quotes one (the ledger's password on its own, as libpq does) is redacted."""
    import logging

    monkeypatch.setenv("ONESTOP_ZALO__APP_SECRET", "AppSecret-9f8e7d")
    monkeypatch.setenv("ONESTOP_LEDGER__URL", "postgresql://bridge:Ledger-5a4b3c@db.example/ledger")

    def refused(_settings: object, _stop: object) -> None:
        logging.getLogger("bridge.test").error("upstream said: bad key AppSecret-9f8e7d; host "
                                               "\"Ledger-5a4b3c@db.example\" unknown")
        raise ConfigError("stop here")

    monkeypatch.setattr(run, "open_bridge", refused)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        assert run.main([]) == 2
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "upstream said: bad key [redacted]" in err and "9f8e7d" not in err and "5a4b3c" not in err
