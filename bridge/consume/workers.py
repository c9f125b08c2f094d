"""Worker threads with per-dossier FIFO: a dossier's record key always picks the same worker.

Kafka keys records by dossier id, so hashing the key keeps a dossier's notifications
in one queue, in consumption order; different dossiers proceed in parallel. A failed
item is not lost: its offset stays uncommitted, so it is processed again.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.consume.settle import WorkItem
from bridge.keyed_workers import KeyedWorkers


class WorkerPool(KeyedWorkers[WorkItem]):
    def __init__(self, size: int, handle: Callable[[WorkItem], None]) -> None:
        super().__init__(size, handle, "worker")

    def submit(self, item: WorkItem, key_hash: int | None = None) -> None:
        super().submit(item, item.record.routing_hash() if key_hash is None else key_hash)
