"""The source topic and its companions: `<topic>.retry` and `<topic>.dlq`.

The companions get the source's partition count, and retry/DLQ copies keep their
source partition number. With the range assignor (librdkafka's default first choice)
partition N of the source and of the retry topic then belong to the same group
member, so one process sees every record of a dossier — first tries and retries —
and per-dossier order and in-process duplicate suppression hold across instances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

log = logging.getLogger(__name__)


class Topics:
    """Partition counts of the topics the bridge touches (cached, thread-safe)."""

    def __init__(self, admin: AdminClient, timeout_s: float = 10.0) -> None:
        self._admin = admin
        self._timeout = timeout_s
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def partitions(self, topic: str, timeout_s: float | None = None) -> int | None:
        with self._lock:
            if topic in self._counts:
                return self._counts[topic]
        found = self.metadata(timeout_s).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        with self._lock:
            self._counts[topic] = len(found.partitions)
        return len(found.partitions)

    def metadata(self, timeout_s: float | None = None) -> ClusterMetadata:
        """The cluster's brokers and topics; raises KafkaException if none answers in time."""
        try:
            # All topics, not `topic=`: a metadata request naming a topic makes brokers with
            # auto.create.topics.enable create it — with their default partition count.
            return self._admin.list_topics(timeout=self._timeout if timeout_s is None else timeout_s)
        finally:
            self._admin.poll(0)  # hands the client's queued log lines to the log (bridge.logs)

    def cached(self, topic: str) -> int | None:
        with self._lock:
            return self._counts.get(topic)

    def wait_for(self, topic: str, stop: threading.Event, log_every_s: float = 30.0,
                 beat: Callable[[], None] = lambda: None) -> int | None:
        """Block until `topic` exists (the connector creates it); None if stopped first.

        `beat` is called on every check: waiting for the connector is not being stuck.
        """
        last_log = 0.0
        while not stop.is_set():
            beat()
            try:
                # A second at a time: the signal handler that sets `stop` runs only between
                # C calls, so a long metadata wait on an unreachable broker delays shutdown.
                count = self.partitions(topic, timeout_s=1.0)
            except KafkaException as exc:
                count = None
                if time.monotonic() - last_log > log_every_s:
                    log.warning("broker not reachable yet", extra={"error": str(exc)})
            if count:
                return count
            if time.monotonic() - last_log > log_every_s:
                log.warning("waiting for the source topic to exist", extra={"topic": topic})
                last_log = time.monotonic()
            stop.wait(1.0)
        return None

    def ensure(self, topics: list[str], partitions: int, consumed: tuple[str, ...] = ()) -> None:
        """Create the missing companions with `partitions` partitions; warn when one the
        bridge consumes (`consumed`: the retry topic, keyed like the source) has another
        count. The DLQ is only written (one partition is the runbook's own layout)."""
        missing = [t for t in topics if self.partitions(t) is None]
        if missing:
            futures = self._admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing],
                operation_timeout=self._timeout)
            for topic, future in futures.items():
                try:
                    future.result(self._timeout)
                    log.info("created topic", extra={"topic": topic, "partitions": partitions})
                except KafkaException as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
            _wait(lambda: all(self.partitions(t) for t in missing), self._timeout)
        for topic in consumed:
            count = self.partitions(topic)
            if count is not None and count != partitions:
                log.warning("companion topic has a different partition count than the source; "
                            "retries of a dossier may be handled by another instance",
                            extra={"topic": topic, "partitions": count, "source": partitions})


def _wait(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
