"""The connector's source settings fail at start-up, naming the setting, not at first use.

A slot name PostgreSQL refuses was only reported when the slot was created (and then as a
crash), an empty table list made a publication without tables, and a DSN libpq cannot
parse was retried forever as if the server were down.
"""

from __future__ import annotations

import threading

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
