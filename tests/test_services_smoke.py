"""The harness's real services work: PostgreSQL round trip, Kafka both ways between clients."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from waiting import wait_for

pytestmark = pytest.mark.services


def test_postgres_round_trip_with_logical_wal(pg) -> None:
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE smoke (id int primary key, v text)")
        cur.execute("INSERT INTO smoke VALUES (1, 'hồ sơ')")
        cur.execute("SELECT v FROM smoke WHERE id = 1")
        assert cur.fetchone() == ("hồ sơ",)
        cur.execute("SHOW wal_level")
        assert cur.fetchone() == ("logical",)


def test_confluent_producer_to_kafka_python_group_consumer(broker, unique_name) -> None:
    topic = f"smoke_{unique_name}"
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "acks": "all"})
    for i in range(20):
        producer.produce(topic, key=str(i % 4).encode(), value=json.dumps({"n": i}).encode())
    assert producer.flush(15) == 0

    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=unique_name,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=6000, heartbeat_interval_ms=1000)
    got: list[int] = []

    def read() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(json.loads(r.value)["n"] for r in records)
        return len(got) >= 20

    wait_for(read, timeout=60, message="20 records through kafka-python")
    consumer.commit()
    committed = sum(consumer.committed(TopicPartition(topic, p)) or 0
                    for p in consumer.partitions_for_topic(topic))
    consumer.close()
    assert sorted(got) == list(range(20))
    assert committed == 20


def test_kafka_python_producer_to_confluent_group_consumer(kafka_config, unique_name) -> None:
    topic = f"smoke_{unique_name}"
    producer = KafkaProducer(bootstrap_servers=kafka_config["bootstrap.servers"], acks="all")
    for i in range(10):
        producer.send(topic, key=b"k", value=str(i).encode())
    producer.flush(15)
    producer.close()

    consumer = Consumer({**kafka_config, "group.id": unique_name, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes | None] = []

    def read() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value())
            consumer.commit(message=msg, asynchronous=False)
        return len(got) >= 10

    wait_for(read, timeout=60, message="10 records through confluent-kafka")
    consumer.close()
    # Same key → same partition → produced order is preserved.
    assert got == [str(i).encode() for i in range(10)]

    again = Consumer({**kafka_config, "group.id": unique_name, "auto.offset.reset": "earliest"})
    again.subscribe([topic])
    assert all(m is None or m.error() for m in (again.poll(1.0) for _ in range(3))), \
        "a committed group must not see its records again"
    again.close()
