"""Worker threads with per-dossier FIFO: a dossier's record key always picks the same worker.

Kafka keys records by dossier id, so hashing the key keeps a dossier's notifications
in one queue, in consumption order; different dossiers proceed in parallel.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from bridge import metrics
from bridge.consume.settle import WorkItem

log = logging.getLogger(__name__)
_IDLE_WAKE_S = 1.0  # an idle worker still proves it is alive this often


class WorkerPool:
    def __init__(self, size: int, handle: Callable[[WorkItem], None]) -> None:
        self.size = max(1, size)
        self._handle = handle
        self._queues: list[queue.SimpleQueue[WorkItem | None]] = [
            queue.SimpleQueue() for _ in range(self.size)]
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(target=self._run, args=(index,), name=f"worker-{index}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, item: WorkItem) -> None:
        self._queues[item.record.routing_hash() % self.size].put(item)

    def queued(self) -> int:
        return sum(q.qsize() for q in self._queues)

    @property
    def busy(self) -> int:
        return self._busy

    def stop(self, timeout: float) -> None:
        """Ask every worker to finish its queue and exit; wait up to `timeout`."""
        for q in self._queues:
            q.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, index: int) -> None:
        beat = metrics.loop_heartbeat.labels(loop=f"worker-{index}")
        q = self._queues[index]
        while True:
            beat.set(time.time())
            try:
                item = q.get(timeout=_IDLE_WAKE_S)
            except queue.Empty:
                continue
            if item is None:
                return
            with self._lock:
                self._busy += 1
            try:
                self._handle(item)
            except Exception:  # the settler handles its errors; this is a last resort
                log.exception("worker failed on an item; it will be processed again")
            finally:
                with self._lock:
                    self._busy -= 1
