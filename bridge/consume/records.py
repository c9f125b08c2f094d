"""A consumed Kafka record, detached from librdkafka, with what its headers say."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bridge.dlq import headers as h


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int | None = None

    @classmethod
    def from_message(cls, msg: Any) -> SourceRecord:
        ts_type, ts = msg.timestamp()
        return cls(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                   list(msg.headers() or ()), ts if ts_type else None)

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def header(self, name: str) -> str | None:
        return h.to_dict(self.headers).get(name)

    @property
    def origin(self) -> tuple[str, int, int]:
        """Topic, partition and offset where the change event was first read."""
        topic = self.header(h.ORIGINAL_TOPIC)
        partition = self.header(h.ORIGINAL_PARTITION)
        offset = self.header(h.ORIGINAL_OFFSET)
        if topic is None or partition is None or offset is None:
            return (self.topic, self.partition, self.offset)
        return (topic, int(partition), int(offset))

    @property
    def due_ms(self) -> int | None:
        """Retry records: when they may be processed again."""
        due = self.header(h.RETRY_DUE_MS)
        return int(due) if due is not None else None

    @property
    def retry_key(self) -> str | None:
        """Retry records: the one notification they bring back."""
        return self.header(h.IDEMPOTENCY_KEY) if self.due_ms is not None else None

    @property
    def replayed(self) -> bool:
        return self.header(h.REPLAYED_FROM) is not None

    def routing_hash(self) -> int:
        """Stable across processes (unlike hash()): the dossier's worker.

        Not CRC-32: librdkafka's default partitioner puts a key in partition
        crc32(key) % partitions, so within one partition crc32(key) % workers reaches
        only workers/partitions of the workers (2 of 8 with 4 partitions)."""
        return int.from_bytes(hashlib.blake2b(self.key or b"", digest_size=8).digest(), "big")
