"""Read the dead-letter topic from start to its current end, and filter what was read."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bridge.dlq import headers as h


@dataclass(frozen=True, slots=True)
class DlqRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    raw_headers: list[tuple[str, bytes]]
    timestamp_ms: int | None
    dossier_code: str | None       # from the header, else from the value when decodable

    @property
    def headers(self) -> dict[str, str]:
        return h.to_dict(self.raw_headers)

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def get(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def failed_at(self) -> datetime | None:
        text = self.get(h.ERROR_TIME)
        if text:
            try:
                return h.parse_time(text)
            except ValueError:
                pass
        if self.timestamp_ms:
            return datetime.fromtimestamp(self.timestamp_ms / 1000).astimezone()
        return None

    def summary(self) -> dict[str, Any]:
        at = self.failed_at
        return {
            "partition": self.partition, "offset": self.offset,
            "time": at.isoformat() if at else None, "reason": self.get(h.ERROR_REASON),
            "error_class": self.get(h.ERROR_CLASS), "error_code": self.get(h.ERROR_CODE),
            "kind": self.get(h.KIND), "dossier_code": self.dossier_code,
            "message": self.get(h.ERROR_MESSAGE),
            "original": {"topic": self.get(h.ORIGINAL_TOPIC),
                         "partition": _int(self.get(h.ORIGINAL_PARTITION)),
                         "offset": _int(self.get(h.ORIGINAL_OFFSET))},
        }

    def full(self) -> dict[str, Any]:
        """Everything, value decoded (JSON if it parses, else text, else base64)."""
        return {**self.summary(), "topic": self.topic, "timestamp_ms": self.timestamp_ms,
                "headers": self.headers, "key": _decode(self.key), "value": _decode(self.value)}


@dataclass(frozen=True, slots=True)
class Filters:
    kind: str | None = None
    error: str | None = None       # error class, upstream code or reason
    dossier: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def match(self, record: DlqRecord) -> bool:
        if self.kind and (record.get(h.KIND) or "").upper() != self.kind.upper():
            return False
        if self.error and self.error.lower() not in {
                (record.get(name) or "").lower()
                for name in (h.ERROR_CLASS, h.ERROR_CODE, h.ERROR_REASON)}:
            return False
        if self.dossier and record.dossier_code != self.dossier:
            return False
        at = record.failed_at
        if self.since and (at is None or at < self.since):
            return False
        if self.until and (at is None or at >= self.until):
            return False
        return True


def read_topic(bootstrap: dict[str, Any], topic: str, pipeline: Any = None,
               timeout_s: float = 30.0) -> Iterator[DlqRecord]:
    """Every record of `topic` present when called, without joining a consumer group."""
    consumer = Consumer({**bootstrap, "group.id": "onestop-dlq-reader", "enable.auto.commit": False,
                         "enable.partition.eof": False})
    try:
        metadata = consumer.list_topics(timeout=timeout_s)  # naming it would auto-create it
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout_s, cached=False)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not starts:
            return
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        # Past the watermark read at start, keep draining until a poll comes back empty:
        # some brokers (tansu) report the end of the last *batch* as the watermark.
        reached = False
        while time.monotonic() < deadline:
            messages = consumer.consume(500, 0.3 if reached else 0.5)
            if reached and not messages:
                return
            for msg in messages:
                partition, offset = msg.partition(), msg.offset()
                if msg.error() is not None or partition not in ends or offset is None:
                    continue
                yield _record(msg, pipeline)
                if offset + 1 >= ends[partition]:
                    ends[partition] = -1
            reached = all(end < 0 for end in ends.values())
        raise TimeoutError(f"could not read {topic} to its end within {timeout_s:.0f} s")
    finally:
        consumer.close()


def _record(msg: Any, pipeline: Any) -> DlqRecord:
    raw = list(msg.headers() or ())
    ts_type, ts = msg.timestamp()
    code = h.to_dict(raw).get(h.DOSSIER_CODE) or _code_from_value(msg.value(), pipeline)
    return DlqRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), raw,
                     ts if ts_type else None, code)


def _code_from_value(value: bytes | None, pipeline: Any) -> str | None:
    if pipeline is None or value is None:
        return None
    try:
        event = pipeline.decode(value)
        row = (event.after or event.before) if event is not None else None
        code = row.get(pipeline.mapping.columns["code"]) if row else None
        return str(code) if code is not None else None
    except Exception:  # malformed: that is why it is here
        return None


def _decode(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None
