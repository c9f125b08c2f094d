"""Produce to the delayed retry topic and the dead-letter topic, and say when it is durable.

A record's offset may be committed only once its retry or DLQ copy is acknowledged
(acks=all, idempotent producer), so every produce takes an `on_durable` callback,
called from `service()` — the consumer loop's thread — when the broker has the copy.
A copy the broker refused after librdkafka's own retries is produced again, with the
offset still uncommitted, until it succeeds or the process stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge import metrics
from bridge.consume.records import SourceRecord
from bridge.dlq import headers as h
from bridge.logs import redact_text
from bridge.settings import KafkaSettings

log = logging.getLogger(__name__)
OnDurable = Callable[[], None]
_REPRODUCE_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record is dead-lettered or retried."""

    reason: str                # one of headers.REASONS (DLQ) or deferred|failed|parked (retry)
    error_class: str
    message: str
    stage: str                 # decode | notify | deliver
    code: int | str | None = None
    attempts: int = 1
    dossier_code: str | None = None
    kind: str | None = None
    idempotency_key: str | None = None


def retry_topic(settings: KafkaSettings, original: str) -> str:
    return original + settings.retry_topic_suffix


def dlq_topic(settings: KafkaSettings, original: str) -> str:
    return original + settings.dlq_topic_suffix


class OutcomeProducer:
    """Thread-safe: worker threads produce, the consumer thread calls `service()`."""

    def __init__(self, producer: Any, settings: KafkaSettings,
                 partitions: Callable[[str], int | None] = lambda _topic: None) -> None:
        self._producer = producer
        self._settings = settings
        self._partitions = partitions
        self._redo: list[tuple[float, dict[str, Any], OnDurable]] = []
        self._lock = threading.Lock()
        self.pending = 0

    def retry(self, record: SourceRecord, failure: Failure, *, due_ms: int, round_: int,
              on_durable: OnDurable) -> None:
        topic, partition, offset = record.origin
        values = self._context(record, failure)
        values.update({h.RETRY_DUE_MS: due_ms, h.RETRY_ROUND: round_,
                       h.RETRY_REASON: failure.reason})
        self._produce(retry_topic(self._settings, topic), record, partition, values, on_durable)
        metrics.retry_scheduled.inc()

    def dead_letter(self, record: SourceRecord, failure: Failure, *, on_durable: OnDurable) -> None:
        topic, partition, _ = record.origin
        values = self._context(record, failure)
        values[h.ERROR_REASON] = failure.reason
        self._produce(dlq_topic(self._settings, topic), record, partition, values, on_durable)
        metrics.dlq_records.labels(reason=failure.reason).inc()

    def service(self, timeout: float = 0.0) -> None:
        """Serve delivery reports and re-produce refused copies that are due."""
        self._producer.poll(timeout)
        now = time.monotonic()
        with self._lock:
            due = [item for item in self._redo if item[0] <= now]
            self._redo = [item for item in self._redo if item[0] > now]
        for _, kwargs, on_durable in due:
            self._send(kwargs, on_durable)

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    # --- internals -----------------------------------------------------------------------
    def _context(self, record: SourceRecord, failure: Failure) -> dict[str, object | None]:
        topic, partition, offset = record.origin
        return {
            h.ORIGINAL_TOPIC: topic, h.ORIGINAL_PARTITION: partition, h.ORIGINAL_OFFSET: offset,
            h.ERROR_CLASS: failure.error_class, h.ERROR_CODE: failure.code,
            # Kept for weeks and printed by `dlq list`: the same redaction as a log line.
            h.ERROR_MESSAGE: redact_text(failure.message)[:1000], h.ERROR_STAGE: failure.stage,
            h.ERROR_ATTEMPTS: failure.attempts, h.ERROR_TIME: h.iso_now(),
            h.DOSSIER_CODE: failure.dossier_code, h.KIND: failure.kind,
            h.IDEMPOTENCY_KEY: failure.idempotency_key,
        }

    def _produce(self, topic: str, record: SourceRecord, partition: int,
                 values: dict[str, object | None], on_durable: OnDurable) -> None:
        # Original headers, minus ours (a replay marker must not travel into retries).
        kwargs: dict[str, Any] = {"topic": topic, "key": record.key, "value": record.value,
                                  "headers": h.foreign(record.headers) + h.encode(values)}
        count = self._partitions(topic)
        if count is not None and partition < count:
            # Same partition number as the source: the dossier's retries stay in order
            # and land with the consumer that owns the source partition.
            kwargs["partition"] = partition
        self._send(kwargs, on_durable)

    def _send(self, kwargs: dict[str, Any], on_durable: OnDurable) -> None:
        def report(err: Any, _msg: Any) -> None:
            with self._lock:
                self.pending -= 1
                if err is not None:
                    log.error("retry/DLQ copy refused by the broker; producing it again",
                              extra={"topic": kwargs["topic"], "error": str(err)})
                    self._redo.append((time.monotonic() + _REPRODUCE_AFTER_S, kwargs, on_durable))
                    return
            on_durable()

        with self._lock:
            self.pending += 1
        while True:
            try:
                self._producer.produce(on_delivery=report, **kwargs)
                return
            except BufferError:  # local queue full: let reports drain, then try again
                self._producer.poll(0.1)
