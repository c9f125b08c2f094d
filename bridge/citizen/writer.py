"""Group commit for the webhook inbox: one writer thread, one transaction per burst.

Under load every request would otherwise pay its own transaction (and SQLite's
single-writer lock). The writer takes whatever has queued up — up to `max_batch`
rows — and commits them together; each request's future is resolved after the commit,
so "stored before answering 200" still holds row by row. A batch that fails is retried
row by row, so one bad row fails alone.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from bridge.citizen.inbox import Inbox

log = logging.getLogger(__name__)
Item = tuple[dict[str, Any], "Future[int | None]"]


class InboxWriter:
    def __init__(self, inbox: Inbox, max_batch: int = 256) -> None:
        self.inbox = inbox
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="webhook-writer")
        self._thread.start()

    def submit(self, row: dict[str, Any]) -> Future[int | None]:
        future: Future[int | None] = Future()
        self._queue.put((row, future))
        return future

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[Item]) -> None:
        try:
            seqs = self.inbox.store_many([row for row, _ in batch])
        except Exception:
            if len(batch) > 1:
                log.warning("inbox batch failed; writing its rows one by one", exc_info=True)
                for item in batch:
                    self._write([item])
                return
            log.exception("inbox write failed")
            batch[0][1].set_exception(RuntimeError("inbox write failed"))
            return
        for (_, future), seq in zip(batch, seqs):
            future.set_result(seq)
