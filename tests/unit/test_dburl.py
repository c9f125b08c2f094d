"""Database URLs as the docs and deploy examples write them (bridge/dburl.py): a bare
postgresql:// must reach psycopg2, which the package installs — SQLAlchemy 2.1 would pick
psycopg 3 and stop the bridge at start-up with "No module named 'psycopg'"."""

from __future__ import annotations

import importlib.util

import pytest

from bridge import dburl
from bridge.errors import ConfigError
from bridge.citizen.dossiers import read_only_engine
from bridge.ledger.engine import make_engine


@pytest.mark.parametrize("url", ["postgresql://u:pw@db:5432/onestop?sslmode=require",
                                 "postgres://u:pw@db/onestop"])
def test_a_bare_postgresql_url_means_psycopg2_when_psycopg_3_is_absent(monkeypatch, url) -> None:
    monkeypatch.setattr(dburl, "_psycopg3_installed", lambda: False)
    parsed = dburl.engine_url(url)
    assert parsed.drivername == "postgresql+psycopg2"
    assert (parsed.host, parsed.database, parsed.password) == ("db", "onestop", "pw")
    assert dict(parsed.query) == ({"sslmode": "require"} if "sslmode" in url else {})


def test_with_psycopg_3_installed_a_bare_url_keeps_sqlalchemys_default(monkeypatch) -> None:
    monkeypatch.setattr(dburl, "_psycopg3_installed", lambda: True)
    assert dburl.engine_url("postgres://u@db/onestop").drivername == "postgresql"


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@db/x", "postgresql+psycopg://u@db/x",
                                 "sqlite:///ledger.db", "mssql+pyodbc://u@dsn"])
def test_a_chosen_driver_or_another_database_is_left_alone(url) -> None:
    assert dburl.engine_url(url).render_as_string(hide_password=False) == url


def test_the_ledger_and_the_lookup_open_the_documented_bare_urls(monkeypatch) -> None:
    """deploy/env/bridge.env.example: ONESTOP_OA__LOOKUP_DSN=postgresql://…; no connection
    is made here, only the engines (which is where the missing driver used to fail)."""
    monkeypatch.setattr(dburl, "_psycopg3_installed", lambda: False)
    assert make_engine("postgresql://onestop_ledger:pw@db/onestop_ledger").dialect.driver == "psycopg2"
    assert read_only_engine("postgresql://onestop_lookup:pw@db/onestop").dialect.driver == "psycopg2"


@pytest.mark.parametrize(("open_", "setting", "url"), [
    (make_engine, "ledger.url", "onestop_ledger:s3cret@db/onestop_ledger"),     # no scheme
    (make_engine, "ledger.url", "postgresql+pg8000://u:s3cret@db/x"),           # driver absent
    (read_only_engine, "oa.lookup_dsn", "host=db user=u password=s3cret"),      # libpq's form
    (read_only_engine, "oa.lookup_dsn", "postgresql+nosuch://u:s3cret@db/x"),   # no such driver
    (make_engine, "ledger.url", "postgresql://u:s3cret@db:54x2/ledger"),         # port not a number
])
def test_an_unusable_url_is_a_configuration_error_that_names_the_setting(open_, setting, url) -> None:
    with pytest.raises(ConfigError, match=setting.replace(".", r"\.")) as err:
        open_(url)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(("url", "extra"), [
    ("mssql+pyodbc://u:s3cret@db/onestop?driver=ODBC+Driver+18+for+SQL+Server", "mssql"),
    ("mysql+pymysql://u:s3cret@db/onestop", "mysql"),
    ("oracle+oracledb://u:s3cret@db:1521/?service_name=ONESTOP", "oracle"),
])
def test_a_missing_driver_names_the_package_extra_that_brings_it(url, extra) -> None:
    """A SQL Server user read "no usable driver … or use postgresql://", and nothing more."""
    try:
        dburl.create_engine("source.dsn", url)
    except ConfigError as exc:
        assert f"pip install 'onestop-bridge[{extra}]'" in str(exc) and "s3cret" not in str(exc)
    else:  # the driver is installed here: nothing to name
        assert importlib.util.find_spec({"mssql": "pyodbc", "mysql": "pymysql",
                                         "oracle": "oracledb"}[extra]) is not None
