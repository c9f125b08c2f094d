"""Rebalance callbacks of the consumer loop (functions of the loop: they share its state).

On revoke, deliveries already started get a bounded time to finish so their outcome
is committed; nothing else of the revoked partitions is kept — the next owner reads
from the committed offsets and the ledger stops it from sending anything twice.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import TopicPartition

from bridge.consume import kafka_ops

if TYPE_CHECKING:
    from bridge.consume.loop import ConsumerLoop

log = logging.getLogger("bridge.consume.loop")
TP = tuple[str, int]


def on_assign(loop: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
    loop.rebalances += 1
    loop.starts.update(kafka_ops.start_positions(consumer, partitions))
    for p in partitions:
        tp = (p.topic, p.partition)
        loop.inflight.new_epoch(tp)
        loop.assigned.add(tp)
        loop.revoking.discard(tp)
        loop.tracker.assign(*tp, start=loop.starts.get(tp))
    try:
        loop.parked.reload(loop.ledger.parked())  # another instance may have parked some
    except Exception:
        log.exception("could not reload parked dossiers from the ledger")
    # librdkafka keeps a partition's pause across revoke and re-assignment: a partition
    # paused while full, revoked, then assigned back would otherwise never flow again.
    if loop.paused_when_full:
        consumer.pause(partitions)
    else:
        consumer.resume(partitions)
    log.info("partitions assigned", extra={"partitions": _names(partitions)})


def on_revoke(loop: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
    loop.rebalances += 1
    tps = {(p.topic, p.partition) for p in partitions}
    loop.revoking |= tps
    # Let started deliveries finish (their outcome is then committed); during shutdown
    # the deadline was already spent.
    wait_s = 0.0 if loop.stopping.is_set() else min(
        10.0, loop.settings.dispatch.shutdown_deadline_s / 2)
    loop.wait_idle(tps, time.monotonic() + wait_s)
    kafka_ops.commit(loop.consumer, loop.tracker, only=tps)
    _forget(loop, tps)
    log.info("partitions revoked", extra={"partitions": _names(partitions)})


def on_lost(loop: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
    loop.rebalances += 1
    _forget(loop, {(p.topic, p.partition) for p in partitions})
    log.warning("partitions lost", extra={"partitions": _names(partitions)})


def _forget(loop: ConsumerLoop, tps: set[TP]) -> None:
    loop.inflight.forget(tps)
    loop.parked.forget(tps)
    for tp in tps:
        loop.assigned.discard(tp)
        loop.tracker.revoke(*tp)
        loop.gate.drop(tp)
        loop.starts.pop(tp, None)
        kafka_ops.drop_lag(tp)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{p.topic}:{p.partition}" for p in partitions]
