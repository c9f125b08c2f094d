"""Worker threads with one FIFO queue each: items with the same key always share a thread.

Used for a dossier's notifications (bridge/consume) and a citizen's webhook events
(bridge/citizen): order is kept per key, different keys proceed in parallel.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from bridge import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
_IDLE_WAKE_S = 1.0  # an idle worker still proves it is alive this often


class KeyedWorkers(Generic[T]):
    def __init__(self, size: int, handle: Callable[[T], None], name: str) -> None:
        self.size = max(1, size)
        self.name = name
        self._handle = handle
        self._queues: list[queue.SimpleQueue[T | None]] = [
            queue.SimpleQueue() for _ in range(self.size)]
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True,
                                      name=f"{self.name}-{index}")
            thread.start()
            self._threads.append(thread)

    def submit(self, item: T, key_hash: int) -> None:
        self._queues[key_hash % self.size].put(item)

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
        beat = metrics.loop_heartbeat.labels(loop=f"{self.name}-{index}")
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
            except Exception:  # handlers deal with their own errors; this is a last resort
                log.exception("worker failed on an item", extra={"pool": self.name})
            finally:
                with self._lock:
                    self._busy -= 1
