"""Run the real consumer loop in-process against the test broker, with a scripted dispatcher."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.consume.loop import ConsumerLoop, LoopTimers
from bridge.consume.topics import Topics
from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.dlq import headers as h
from bridge.dlq.producer import dlq_topic, retry_topic
from bridge.ledger import Ledger
from bridge.model import Notification
from bridge.pipeline import Pipeline
from bridge.kafka_clients import consumer_config, producer_config
from bridge.settings import Settings, load_settings

Script = Callable[[Notification, int], DeliveryOutcome | None]


@dataclass
class FakeDispatcher:
    """Delivers everything, unless `script(n, call_no)` returns an outcome or raises."""

    script: Script | None = None
    sent: list[Notification] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, n: Notification) -> DeliveryOutcome:
        with self.lock:
            self.calls[n.idempotency_key] += 1
            call_no = self.calls[n.idempotency_key]
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.script is not None:
            outcome = self.script(n, call_no)
            if outcome is not None:
                return outcome
        now = datetime.now(UTC)
        with self.lock:
            self.sent.append(n)
        return DeliveryOutcome("sent", "zns", f"m-{len(self.sent)}", 150,
                               [Attempt("zns", "ok", None, None, now, 150)])

    def sent_codes(self) -> list[str]:
        with self.lock:
            return [n.dossier_code for n in self.sent]


def make_settings(broker: Any, topic: str, tmp: Path, **dispatch: Any) -> Settings:
    return load_settings(
        source={"topic": topic},
        kafka={"bootstrap_servers": broker.bootstrap, "group_id": f"g-{topic}",
               "extra": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                         "max.poll.interval.ms": 20000}},
        ledger={"url": f"sqlite:///{tmp / 'ledger.db'}"},
        dispatch={"workers": 4, "max_in_flight": 50, "retry_delays_s": [0.5, 0.5],
                  "shutdown_deadline_s": 6.0, **dispatch})


def create_topics(broker: Any, topic: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    names = [topic, topic + ".retry", topic + ".dlq"]
    for future in admin.create_topics([NewTopic(n, num_partitions=partitions) for n in names]
                                      ).values():
        future.result(15)


class Running:
    """The loop in a thread; `stop()` runs its graceful shutdown."""

    def __init__(self, settings: Settings, dispatcher: Any) -> None:
        self.settings = settings
        self.ledger = Ledger.open(settings.ledger.url)
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        self.topics = Topics(admin)
        self.topics.partitions(settings.source.topic)
        for t in (retry_topic(settings.kafka, settings.source.topic),
                  dlq_topic(settings.kafka, settings.source.topic)):
            self.topics.partitions(t)
        self.loop = ConsumerLoop(settings, Pipeline(settings), self.ledger, dispatcher,
                                 Consumer(consumer_config(settings)),
                                 Producer(producer_config(settings)),
                                 partitions=self.topics.cached, timers=LoopTimers(commit_s=0.2))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> float:
        started = time.monotonic()
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "loop did not stop"
        self.ledger.close()
        return time.monotonic() - started


def produce(broker: Any, topic: str, documents: list[Any], *, key: Callable[[Any], bytes] | None = None,
            headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for doc in documents:
        value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        k = key(doc) if key else (json.dumps({"id": doc["after"]["id"]}).encode()
                                  if isinstance(doc, dict) and doc.get("after") else b"x")
        producer.produce(topic, key=k, value=value, headers=headers or [])
    assert producer.flush(15) == 0


def read_all(broker: Any, topic: str, timeout: float = 5.0) -> list[Any]:
    """Every record of `topic` (group-less), as confluent Message objects."""
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10)
    tps = []
    for p in meta.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            tps.append((TopicPartition(topic, p, low), high))
    consumer.assign([tp for tp, _ in tps])
    want = sum(high - tp.offset for tp, high in tps)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Read past the watermark until idle: tansu reports the last batch's base + 1.
        batch = [m for m in consumer.consume(100, 0.3 if len(out) >= want else 0.2)
                 if m.error() is None]
        if not batch and len(out) >= want:
            break
        out.extend(batch)
    consumer.close()
    return out


def header_map(msg: Any) -> dict[str, str]:
    return h.to_dict(msg.headers())
