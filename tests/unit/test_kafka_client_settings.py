"""`kafka.extra` is shared by every Kafka client; each gets only the keys it understands.

librdkafka prints a CONFWARN line at each start for a key of the other client kind: an
operator who set `linger.ms` for the connector would see the bridge's consumer warn
about it at every restart, and learn to ignore warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from bridge.dlq.cli import reader_config
from bridge.kafka_clients import admin_config, consumer_config, producer_config
from bridge.settings import load_settings
from connectors.delivery import producer_config as capture_producer_config
from connectors.offsets import OffsetStore

EXTRA = {"session.timeout.ms": 6000, "max.poll.interval.ms": 7000, "fetch.wait.max.ms": 20,
         "linger.ms": 50, "compression.type": "lz4", "acks": "all",
         "message.timeout.ms": 60000, "socket.keepalive.enable": True}
UNREACHABLE = "127.0.0.1:1"  # the clients are only built: no broker needed


def _log_lines(build: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> list[str]:
    """librdkafka's log lines while the client starts (they arrive on poll)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(f"test.rdkafka.{id(lines)}")
    logger.addHandler(handler)
    logger.propagate = False
    client = build({**config, "logger": logger})
    client.poll(0.2)
    if isinstance(client, Consumer):
        client.close()
    return lines


def _settings() -> Any:
    return load_settings(kafka={"bootstrap_servers": UNREACHABLE, "extra": dict(EXTRA)})


def _capture_reader_config(settings: Any) -> dict[str, Any]:
    store = OffsetStore(settings.kafka, capture_producer_config(settings.kafka), "onestop")
    return store._reader_conf


CLIENTS = {
    "bridge consumer": (Consumer, consumer_config),
    "bridge producer": (Producer, producer_config),
    "bridge admin": (AdminClient, admin_config),
    "capture producer": (Producer, lambda s: capture_producer_config(s.kafka)),
    "capture offsets reader": (Consumer, _capture_reader_config),
    "dlq reader": (Consumer, lambda s: {**reader_config(s), "group.id": "onestop-dlq-reader"}),
}


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_no_client_warns_about_a_key_meant_for_the_other_kind(name: str) -> None:
    build, config = CLIENTS[name]
    lines = _log_lines(build, config(_settings()))
    assert [line for line in lines if "CONFWARN" in line] == []


def test_each_kind_keeps_its_own_and_the_shared_keys() -> None:
    settings = _settings()
    consumer, producer = consumer_config(settings), capture_producer_config(settings.kafka)
    assert consumer["session.timeout.ms"] == 6000 and consumer["fetch.wait.max.ms"] == 20
    assert producer["linger.ms"] == 50 and producer["compression.type"] == "lz4"
    assert "linger.ms" not in consumer and "session.timeout.ms" not in producer
    assert consumer["socket.keepalive.enable"] is producer["socket.keepalive.enable"] is True


def test_the_check_itself_sees_a_warning() -> None:
    lines = _log_lines(Consumer, {"bootstrap.servers": UNREACHABLE, "group.id": "g",
                                  "linger.ms": 5})
    assert any("CONFWARN" in line and "producer property" in line for line in lines)


def test_the_dlq_tool_reaches_the_cluster_the_way_run_and_capture_do() -> None:
    """It used to pass on only security./sasl./ssl. keys: with a cluster that needs any
    other client setting, `run` and `capture` worked and the DLQ tool could not connect."""
    settings = _settings()
    reader, replay = reader_config(settings), producer_config(settings)  # replay uses run's
    assert reader["socket.keepalive.enable"] is replay["socket.keepalive.enable"] is True
    assert reader["fetch.wait.max.ms"] == 20 and "linger.ms" not in reader
    assert replay["linger.ms"] == 50 and "session.timeout.ms" not in replay
    assert replay["acks"] == "all" and replay["enable.idempotence"] is True
