"""Small Kafka calls the consumer loop makes: commits, start positions, lag."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaException, TopicPartition

from bridge import metrics
from bridge.consume.offsets import OffsetTracker

log = logging.getLogger(__name__)
TP = tuple[str, int]


def commit(consumer: Any, tracker: OffsetTracker, only: set[TP] | None = None) -> None:
    """Commit each partition's contiguous completed prefix, if it moved."""
    positions = tracker.to_commit(only)
    if not positions:
        return
    offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        log.warning("offset commit failed; will retry", extra={"error": str(exc)})
        return
    tracker.mark_committed(positions)


def start_positions(consumer: Any, partitions: list[TopicPartition],
                    timeout: float = 10.0) -> dict[TP, int | None]:
    """Where each newly assigned partition will be read from (None if unknown).

    The committed offset, or the log start for a partition the group never committed
    (auto.offset.reset = earliest).
    """
    result: dict[TP, int | None] = {(p.topic, p.partition): None for p in partitions}
    try:
        for tp in consumer.committed(partitions, timeout=timeout):
            offset = tp.offset
            if offset == OFFSET_INVALID or offset < 0:
                low, _ = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                        timeout=timeout, cached=False)
                offset = low
            result[(tp.topic, tp.partition)] = offset
    except KafkaException as exc:
        log.warning("could not read committed offsets", extra={"error": str(exc)})
    return result


def update_lag(consumer: Any, assigned: set[TP], tracker: OffsetTracker) -> None:
    """onestop_consumer_lag{partition="topic:N"} = high watermark − position."""
    if not assigned:
        return
    try:
        for tp in consumer.position([TopicPartition(*tp) for tp in assigned]):
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                     timeout=1.0, cached=False)
            position = tp.offset if tp.offset >= 0 else (
                tracker.partition(tp.topic, tp.partition).committable() or high)
            metrics.consumer_lag.labels(partition=lag_label((tp.topic, tp.partition))).set(
                max(0, high - position))
    except KafkaException as exc:
        log.debug("lag update failed", extra={"error": str(exc)})


def lag_label(tp: TP) -> str:
    return f"{tp[0]}:{tp[1]}"


def drop_lag(tp: TP) -> None:
    try:
        metrics.consumer_lag.remove(lag_label(tp))
    except KeyError:
        pass
