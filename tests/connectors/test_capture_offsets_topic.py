"""`<prefix>.offsets` keeps the snapshot-completion record for as long as the slot lives.

Left to auto-creation it would be a 7-day `cleanup.policy=delete` topic: a week after the
snapshot the record expires, and the connector's next restart snapshots every table again
(a full re-send as `op:"r"`). Kafka Connect creates its offsets topic compacted and refuses
one that is not; so does the connector.
"""

from __future__ import annotations

import logging
import subprocess
import time
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from bridge.embedded import free_port
from bridge.errors import ConfigError
from bridge.settings import load_settings
from capture_support import insert_dossier
from connectors.delivery import KafkaUnavailable, producer_config
from connectors.offsets import OffsetStore
from test_capture_robustness import _cli


def _store(broker: Any, prefix: str) -> OffsetStore:
    kafka = load_settings(None, kafka={"bootstrap_servers": broker.bootstrap}).kafka
    return OffsetStore(kafka, producer_config(kafka), prefix)


def _topic_config(broker: Any, topic: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept until the answer
    configs = admin.describe_configs([resource])
    return {name: entry.value for name, entry in configs[resource].result(15).items()}


def _create(broker: Any, topic: str, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1, config=config)])[topic].result(15)


def test_a_missing_topic_is_created_compacted_and_then_holds_the_record(broker, unique_name) -> None:
    store = _store(broker, unique_name)
    store.prepare()
    assert _topic_config(broker, f"{unique_name}.offsets").get("cleanup.policy") == "compact"
    store.save({"slot": "s", "snapshot_completed": True})
    assert _store(broker, unique_name).load() == {"slot": "s", "snapshot_completed": True}


@pytest.mark.parametrize("config", [{"cleanup.policy": "delete"}, {"cleanup.policy": "compact,delete"},
                                    {"cleanup.policy": "delete", "retention.ms": "86400000"}])
def test_a_topic_that_deletes_old_records_is_refused_with_the_fix(broker, unique_name, config) -> None:
    _create(broker, f"{unique_name}.offsets", **config)
    with pytest.raises(ConfigError) as refused:
        _store(broker, unique_name).prepare()
    message = str(refused.value)
    assert f"topic {unique_name}.offsets deletes records after" in message
    assert "would snapshot every table again" in message
    assert (f"kafka-configs.sh --bootstrap-server {broker.bootstrap} --alter --entity-type topics "
            f"--entity-name {unique_name}.offsets --add-config cleanup.policy=compact") in message


def test_an_auto_created_topic_counts_as_kafkas_7_day_default(broker, unique_name) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(f"{unique_name}.offsets", b"{}", b"x")
    assert producer.flush(15) == 0
    with pytest.raises(ConfigError, match="deletes records after 7 days"):
        _store(broker, unique_name).prepare()


@pytest.mark.parametrize("config", [{"cleanup.policy": "compact"},
                                    {"cleanup.policy": "delete", "retention.ms": "-1"}])
def test_a_topic_that_keeps_its_records_is_accepted(broker, unique_name, config) -> None:
    _create(broker, f"{unique_name}.offsets", **config)
    _store(broker, unique_name).prepare()


def test_capture_refuses_to_start_on_a_deleting_offsets_topic(capture_db, broker, tmp_path) -> None:
    """Exit status 2 (systemd does not restart it) before any slot or snapshot is made."""
    insert_dossier(capture_db.connect(), "OFF-1")
    _create(broker, f"{capture_db.name}.offsets", **{"cleanup.policy": "delete"})
    command, env = _cli("--metrics-port", "0", env=capture_db.env())
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"topic {capture_db.name}.offsets deletes records after 7 days" in result.stderr
    assert "Traceback" not in result.stderr
    assert capture_db.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                              (capture_db.name,)) == [(0,)]



def test_the_last_record_wins_and_a_tombstone_deletes_it(broker, unique_name) -> None:
    """Start-up reads only the last record (the topic holds a bound per confirmation); a
    tombstone for the key — how an operator forces a new snapshot — counts as none."""
    store = _store(broker, unique_name)
    store.prepare()
    for n in range(3):
        store.save({"slot": "s", "snapshot_completed": True, "n": n})
    assert _store(broker, unique_name).load() == {"slot": "s", "snapshot_completed": True, "n": 2}
    # Java's partitioner, as kafka-console-producer uses: the key's partition among the 25.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    producer.produce(store.topic, None, store.key)
    assert producer.flush(15) == 0
    assert _store(broker, unique_name).load() is None


def test_an_unreachable_kafka_is_named_at_once_not_only_when_the_wait_ends(caplog) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    kafka = load_settings(None, kafka={"bootstrap_servers": address}).kafka
    store = OffsetStore(kafka, producer_config(kafka), "unreachable")
    started = time.time()
    with caplog.at_level(logging.WARNING, logger="onestop.capture.offsets"):
        for _attempt in range(2):  # two sessions of one outage: said once
            with pytest.raises(KafkaUnavailable):
                store.prepare(timeout=3.0)
    said = [r for r in caplog.records if "does not answer yet" in r.getMessage()]
    assert len(said) == 1 and address in said[0].getMessage()
    assert said[0].created - started < 2.0  # the first one-second attempt, not the whole timeout
