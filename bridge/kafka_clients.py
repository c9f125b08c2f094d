"""The Kafka client settings of the bridge's own clients: `run` (consumer, producer, admin)
and the DLQ tool, which must reach a cluster exactly as the service does."""

from __future__ import annotations

from typing import Any

from bridge.logs import with_kafka_log
from bridge.settings import Settings


def kafka_common(settings: Settings) -> dict[str, Any]:
    return with_kafka_log({"bootstrap.servers": settings.kafka.bootstrap_servers,
                           "client.id": settings.kafka.client_id})


def consumer_config(settings: Settings) -> dict[str, Any]:
    config = {
        **kafka_common(settings),
        "group.id": settings.kafka.group_id,
        "enable.auto.commit": False,        # commits follow durable outcomes only
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",    # a new group must not skip citizens' news
        # Range keeps partition N of the source and of its retry topic on one member.
        "partition.assignment.strategy": "range",
        "queued.max.messages.kbytes": 8192,  # bounded prefetch: memory stays flat on backlogs
        # A quiet topic must not add the default 500 ms of broker-side fetch wait to every
        # notice's latency.
        "fetch.wait.max.ms": 50,
        "topic.metadata.refresh.interval.ms": 30000,
    }
    config.update(settings.kafka.extra_for("consumer"))
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    config = {**kafka_common(settings), "acks": "all", "enable.idempotence": True,
              "linger.ms": 5}
    config.update(settings.kafka.extra_for("producer"))
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    # An admin client is a producer-kind handle to librdkafka: consumer keys would warn.
    return kafka_common(settings) | settings.kafka.extra_for("producer")
