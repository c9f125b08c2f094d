"""The connector's source settings fail at start-up, naming the setting, not at first use.

A slot name PostgreSQL refuses was only reported when the slot was created (and then as a
crash), an empty table list made a publication without tables, and a DSN libpq cannot
parse was retried forever as if the server were down.
"""

from __future__ import annotations

import threading

import psycopg2
import pytest

from bridge.errors import ConfigError
from bridge.settings import load_settings
from connectors.capture import PgCapture


@pytest.mark.parametrize(("source", "named"), [
    ({"slot": "Onestop-Bridge"}, "source.slot"),
    ({"slot": "x" * 64}, "source.slot"),
    ({"slot": ""}, "source.slot"),
    ({"tables": []}, "source.tables"),
    ({"tables": ""}, "source.tables"),  # ONESTOP_SOURCE__TABLES= left empty
    ({"topic_prefix": "một cửa"}, "source.topic_prefix"),
    ({"topic_prefix": ""}, "source.topic_prefix"),
    ({"timezone": "Asia/Hanoi"}, "source.timezone"),  # not an IANA name
    ({"timezone": "../../etc/passwd"}, "source.timezone"),
])
def test_a_value_the_server_or_kafka_would_refuse_is_a_configuration_error(
        source: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(None, source=source)


def test_the_names_in_use_are_accepted() -> None:
    settings = load_settings(None, source={"slot": "onestop_bridge_2", "topic_prefix": "long-an.onestop_1",
                                           "tables": "public.dossiers,public.dossier_history",
                                           "timezone": "Asia/Saigon"})  # the old name, still a link
    assert settings.source.tables == ["public.dossiers", "public.dossier_history"]


@pytest.mark.parametrize("dsn", ["notadsn", "host=db port=5432 passwrd=s3cret-value"])
def test_a_dsn_libpq_cannot_parse_is_a_configuration_error_that_does_not_quote_it(dsn: str) -> None:
    settings = load_settings(None, source={"dsn": dsn})
    with pytest.raises(ConfigError, match="source.dsn is not a PostgreSQL connection string") as err:
        PgCapture(settings, threading.Event())
    assert "s3cret" not in str(err.value) and "notadsn" not in str(err.value)


@pytest.mark.parametrize("dsn", ["", "  "])
def test_a_dsn_set_to_nothing_is_not_set(dsn: str) -> None:
    """`ONESTOP_SOURCE__DSN=`: libpq would read it as all defaults (the local socket) and the
    connector retried for ever; the lookup's DSN the same."""
    settings = load_settings(None, source={"dsn": dsn}, oa={"lookup_dsn": dsn})
    assert settings.source.dsn is None and settings.oa.lookup_dsn is None
    with pytest.raises(ConfigError, match=r"source\.dsn is not set \(ONESTOP_SOURCE__DSN\)"):
        PgCapture(settings, threading.Event())


@pytest.mark.parametrize("dsn", ["postgresql://u:s3cret@db:notaport/onestop",
                                 "host=db port=5432,54x2 user=u password=s3cret"])
def test_a_port_that_is_not_a_number_is_a_configuration_error(dsn: str) -> None:
    """libpq reads the port only when it connects; the connector would have retried forever."""
    with pytest.raises(ConfigError, match="source.dsn: the port is not a number") as err:
        PgCapture(load_settings(None, source={"dsn": dsn}), threading.Event())
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(("answer", "refused"), [
    ('connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password '
     'authentication failed for user "onestop_capture"', True),
    ('connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for host '
     '"10.0.0.9", user "onestop_capture", database "onestop", no encryption', True),
    ('connection to server at "db", port 5432 failed: Connection refused', False),
    ('connection to server at "db", port 5432 failed: FATAL:  the database system is starting up', False),
])
def test_a_refused_login_stops_the_connector_and_an_outage_is_retried(
        monkeypatch: pytest.MonkeyPatch, answer: str, refused: bool) -> None:
    calls: list[str] = []

    def connect(*_args: object, **_kwargs: object) -> None:
        calls.append("connect")
        if len(calls) > 2:  # retried: enough to know
            stop.set()
        raise psycopg2.OperationalError(answer)

    stop = threading.Event()
    capture = PgCapture(load_settings(None, source={"dsn": "postgresql://onestop_capture@db/onestop"},
                                      kafka={"bootstrap_servers": "127.0.0.1:9"}), stop)
    monkeypatch.setattr(capture, "_sleep", lambda _s: None)
    monkeypatch.setattr(psycopg2, "connect", connect)
    if refused:
        with pytest.raises(ConfigError, match="the database refused source.dsn"):
            capture.run()
        assert calls == ["connect"]
    else:
        capture.run()  # returns once stopped
        assert len(calls) == 3


def test_a_misspelt_key_is_named_and_its_value_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic quotes the input it refuses; under a misspelt key that may be the DSN."""
    monkeypatch.setenv("ONESTOP_SOURCE__HEARTBEAT_INTERVAL_S", "s3cret-too")
    with pytest.raises(ConfigError) as err:
        load_settings(None, source={"dns": "host=db user=onestop_capture password=s3cret"})
    message = str(err.value)
    assert "source.dns (ONESTOP_SOURCE__DNS): no such setting" in message
    assert "source.heartbeat_interval_s (ONESTOP_SOURCE__HEARTBEAT_INTERVAL_S)" in message
    assert "s3cret" not in message


def test_a_variable_whose_json_cannot_be_read_is_named_and_its_value_never_printed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONESTOP_KAFKA__EXTRA", '{"sasl.password": "s3cret",}')
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    assert "ONESTOP_KAFKA__EXTRA: not valid JSON" in str(err.value) and "s3cret" not in str(err.value)


@pytest.mark.parametrize("name", ["ONESTOP_LEDGER_URL", "ONESTOP_ZALLO__APP_SECRET", "ONESTOP_LEDGER__URLL"])
def test_a_misspelt_variable_name_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Ignored, ONESTOP_LEDGER_URL (one underscore) left the ledger on a local SQLite file:
    scaled-out hosts would no longer share one ledger, and could send twice."""
    monkeypatch.setenv(name, "postgresql://bridge:s3cret@db/ledger")
    with pytest.raises(ConfigError, match=f"not a setting: {name} ") as err:
        load_settings(None)
    assert "s3cret" not in str(err.value)


def test_variables_that_are_not_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONESTOP_PURE_PYTHON", "1")  # read at install time
    monkeypatch.setenv("ONESTOP_SOURCE__COLUMNS__CODE", "ma_ho_so")  # a nested setting
    assert load_settings(None).source.columns.code == "ma_ho_so"


@pytest.mark.parametrize(("dsn", "option"), [("host=db foo=bar password=s3cret", "foo"),
                                             ("postgresql://u:s3cret@db/onestop?sslmod=require", "sslmod")])
def test_an_option_libpq_does_not_know_is_named(dsn: str, option: str) -> None:
    with pytest.raises(ConfigError, match=f"libpq knows no option '{option}'") as err:
        PgCapture(load_settings(None, source={"dsn": dsn}), threading.Event())
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(("name", "value"), [
    ("ONESTOP_ZALO__APP_SECRET", "AppSecret-9f8e7d\r"),   # an env file saved with CRLF
    ("ONESTOP_SMS__API_KEY", " sms-key-9f8e7d"),
    ("ONESTOP_ZALO__REFRESH_TOKEN", "RT-9f8e7d\n"),   # pasted with its newline
])
def test_a_secret_with_a_control_character_or_edge_space_is_refused_unquoted(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """An HTTP library refusing such a header quotes it in the error: in logs, /readyz and
    dead letters."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as err:
        load_settings()
    assert "9f8e7d" not in str(err.value) and "control character" in str(err.value)


@pytest.mark.parametrize(("name", "url"), [
    ("ONESTOP_SOURCE__DSN", "postgresql://onestop_capture:Cap@Pw_s3cr3t@127.0.0.1:5432/onestop"),
    ("ONESTOP_LEDGER__URL", "postgresql+psycopg2://onestop_ledger:Le/dg_s3cr3t@db:5432/ledger"),
    ("ONESTOP_OA__LOOKUP_DSN", "postgresql://onestop_lookup:a#b_s3cr3t@db/onestop"),
])
def test_a_password_that_libpq_would_split_into_the_host_is_refused_unquoted(
        monkeypatch: pytest.MonkeyPatch, name: str, url: str) -> None:
    """Unencoded, the rest of the password becomes the "host" of every connection error."""
    monkeypatch.setenv(name, url)
    with pytest.raises(ConfigError, match=f"{name}.*percent-encode") as err:
        load_settings()
    assert "s3cr3t" not in str(err.value)


@pytest.mark.parametrize("url", ["postgresql://u:Cap%40Pw@127.0.0.1:5432/onestop",
                                 "sqlite:////var/lib/onestop@1/ledger.db",
                                 "postgresql:///onestop?host=/run/postgresql"])
def test_encoded_passwords_and_urls_without_a_host_part_are_accepted(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ONESTOP_LEDGER__URL", url)
    assert load_settings().ledger.url == url



@pytest.mark.parametrize("key, value", [("poll_interval_s", 0), ("poll_interval_s", -1),
                                        ("poll_overlap_s", -60)])
def test_polling_settings_that_would_spin_or_skip_rows_are_refused(key: str, value: float) -> None:
    """A negative overlap skipped every change made within it after the cursor; an interval
    of 0 polled in a busy loop."""
    with pytest.raises(Exception, match=key):
        load_settings(None, source={key: value})
