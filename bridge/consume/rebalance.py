"""Rebalance callbacks of the consumer loop (a mixin: they share the loop's state).

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


class RebalanceHandlers:
    def _on_assign(self: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self.starts.update(kafka_ops.start_positions(consumer, partitions))
        for p in partitions:
            tp = (p.topic, p.partition)
            self.inflight.new_epoch(tp)
            self.assigned.add(tp)
            self.revoking.discard(tp)
            self.tracker.assign(*tp, start=self.starts.get(tp))
        try:
            self.parked.reload(self.ledger.parked())  # another instance may have parked some
        except Exception:
            log.exception("could not reload parked dossiers from the ledger")
        # librdkafka keeps a partition's pause across revoke and re-assignment: a partition
        # paused while full, revoked, then assigned back would otherwise never flow again.
        if self._bp_paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        log.info("partitions assigned", extra={"partitions": _names(partitions)})

    def _on_revoke(self: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        tps = {(p.topic, p.partition) for p in partitions}
        self.revoking |= tps
        # Let started deliveries finish (their outcome is then committed); during shutdown
        # the deadline was already spent.
        wait_s = 0.0 if self.stopping.is_set() else min(
            10.0, self.settings.dispatch.shutdown_deadline_s / 2)
        self._wait_idle(tps, time.monotonic() + wait_s)
        kafka_ops.commit(self.consumer, self.tracker, only=tps)
        self._forget(tps)
        log.info("partitions revoked", extra={"partitions": _names(partitions)})

    def _on_lost(self: ConsumerLoop, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self._forget({(p.topic, p.partition) for p in partitions})
        log.warning("partitions lost", extra={"partitions": _names(partitions)})

    def _forget(self: ConsumerLoop, tps: set[TP]) -> None:
        self.inflight.forget(tps)
        self.parked.forget(tps)
        for tp in tps:
            self.assigned.discard(tp)
            self.tracker.revoke(*tp)
            self.gate.drop(tp)
            self.starts.pop(tp, None)
            kafka_ops.drop_lag(tp)


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{p.topic}:{p.partition}" for p in partitions]
