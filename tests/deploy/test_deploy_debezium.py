"""The Debezium connector config agrees with the bridge; register.py creates/updates it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType
from typing import Any

import pytest

from bridge.settings import load_settings
from deploy_helpers import DEPLOY, load_yaml, read_env_file
from scripts import load_script

CONNECTOR = DEPLOY / "debezium" / "onestop-dossiers.json"
CONFIG = DEPLOY / "config" / "onestop-bridge.toml"


@pytest.fixture(scope="module")
def connector() -> dict[str, Any]:
    return json.loads(CONNECTOR.read_text(encoding="utf-8"))


def test_connector_has_the_required_debezium_keys(connector: dict[str, Any]) -> None:
    config = connector["config"]
    assert connector["name"] == "onestop-dossiers"
    for key in ("connector.class", "database.hostname", "database.port", "database.dbname",
                "database.user", "database.password", "topic.prefix", "table.include.list",
                "plugin.name", "slot.name", "publication.name", "publication.autocreate.mode",
                "snapshot.mode", "heartbeat.interval.ms", "heartbeat.action.query",
                "key.converter", "value.converter", "value.converter.schemas.enable"):
        assert config.get(key), key
    assert all(isinstance(v, str) for v in config.values()), "Connect configs are strings"
    assert config["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert config["plugin.name"] == "pgoutput"
    assert config["snapshot.mode"] == "initial"
    assert int(config["heartbeat.interval.ms"]) > 0
    assert config["table.include.list"] == "public.dossiers"


def test_connector_writes_what_the_bridge_reads(connector: dict[str, Any]) -> None:
    config, source = connector["config"], load_settings(CONFIG).source
    # Debezium names data topics <topic.prefix>.<schema>.<table>.
    topic = f"{config['topic.prefix']}.{config['table.include.list']}"
    assert topic == source.topic == "onestop.public.dossiers"
    assert config["publication.name"] == source.publication
    # Two connectors must never share a slot.
    assert config["slot.name"] != source.slot
    assert config["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert config["value.converter.schemas.enable"] == str(source.schemas_enable).lower()
    # Without schemas, precise decimals (base64 unscaled bytes) would lose their scale.
    if config["value.converter.schemas.enable"] == "false":
        assert config.get("decimal.handling.mode") in ("string", "double")


def test_publication_is_never_created_for_all_tables(connector: dict[str, Any]) -> None:
    """all_tables needs a superuser; filtered ALTERs a publication the capture role does not own."""
    assert connector["config"]["publication.autocreate.mode"] == "disabled"


def test_password_comes_from_the_worker_environment(connector: dict[str, Any]) -> None:
    password = connector["config"]["database.password"]
    assert password.startswith("${env:") and password.endswith("}")
    variable = password[len("${env:"):-1]
    assert variable in read_env_file(DEPLOY / "env" / "capture.env.example")
    connect = load_yaml(DEPLOY / "compose.yaml")["services"]["connect"]
    env = connect["environment"]
    assert env["CONNECT_CONFIG_PROVIDERS"] == "env"
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"].endswith("EnvVarConfigProvider")


class FakeConnect:
    """A stand-in for Kafka Connect's REST API: records PUTs, answers a scripted status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.command, self.path, body))
                status = fake.statuses.pop(0) if len(fake.statuses) > 1 else fake.statuses[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error_code": %d}' % status if status >= 400 else b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeConnect:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def register() -> ModuleType:
    return load_script("onestop_register", "deploy/debezium/register.py")


def no_pause(_seconds: float) -> None:
    """register()'s pause between attempts; the fake answers at once."""


def test_register_puts_the_config_idempotently(register: ModuleType,
                                               connector: dict[str, Any]) -> None:
    with FakeConnect([201]) as connect:
        assert register.register(connect.url, CONNECTOR, wait_s=5, pause=no_pause) == 0
        assert register.register(connect.url, CONNECTOR, wait_s=5, pause=no_pause) == 0
    assert [(m, p) for m, p, _ in connect.requests] == [
        ("PUT", "/connectors/onestop-dossiers/config")] * 2
    assert connect.requests[0][2] == connector["config"]


def test_register_waits_out_a_rebalancing_worker(register: ModuleType) -> None:
    with FakeConnect([409, 503, 200]) as connect:
        assert register.register(connect.url, CONNECTOR, wait_s=30, pause=no_pause) == 0
    assert len(connect.requests) == 3


def test_register_stops_on_a_rejected_config(register: ModuleType,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with FakeConnect([400]) as connect:
        assert register.register(connect.url, CONNECTOR, wait_s=30, pause=no_pause) == 1
    assert len(connect.requests) == 1
    assert "HTTP 400" in capsys.readouterr().err
