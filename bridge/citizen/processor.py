"""Work after the 200: inbox events handled by worker threads, in order per citizen.

A citizen's events always go to the same worker queue (hash of the user key), so a
"follow" is handled before the message typed right after it; different citizens
proceed in parallel. A handler that asks for `NotYet` is re-queued after a back-off
(its inbox row stays `new`, so a restart also picks it up); any other error marks the
row `failed` with the reason and the worker moves on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from bridge import metrics
from bridge.citizen.inbox import Inbox, InboxEvent
from bridge.citizen.receipts import NotYet
from bridge.keyed_workers import KeyedWorkers

log = logging.getLogger(__name__)
Handler = Callable[[InboxEvent, int], None]


class Processor:
    def __init__(self, inbox: Inbox, handler: Handler, workers: int = 4, *,
                 backoff_s: float = 1.0) -> None:
        self.inbox = inbox
        self.handler = handler
        self.backoff_s = backoff_s
        self._pool: KeyedWorkers[tuple[InboxEvent, int]] = KeyedWorkers(
            workers, lambda item: self._process(*item), "citizen")
        self.size = self._pool.size
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self, recover: bool = True) -> int:
        """Start the workers; first queue every event a previous run left unhandled."""
        recovered = self.inbox.pending() if recover else []
        for event in recovered:
            self.submit(event)
        self._pool.start()
        if recovered:
            log.info("webhook events recovered from the inbox", extra={"count": len(recovered)})
        return len(recovered)

    def submit(self, event: InboxEvent, attempt: int = 0) -> None:
        digest = hashlib.blake2b(event.user_key.encode(), digest_size=4).digest()
        self._pool.submit((event, attempt), int.from_bytes(digest, "big"))

    def backlog(self) -> int:
        with self._lock:
            timers = len(self._timers)
        return self._pool.queued() + self._pool.busy + timers

    def idle(self) -> bool:
        return self.backlog() == 0

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        self._pool.stop(timeout)

    def _process(self, event: InboxEvent, attempt: int) -> None:
        try:
            self.handler(event, attempt)
        except NotYet:
            self._later(event, attempt + 1)
            return
        except Exception as exc:  # one bad event must not stop the citizen's queue
            log.exception("webhook event failed", extra={"event": event.event_name,
                                                         "seq": event.seq})
            self._finish(event, f"{type(exc).__name__}: {exc}")
            return
        self._finish(event, None)

    def _finish(self, event: InboxEvent, error: str | None) -> None:
        metrics.webhook_events.labels(event=_event_label(event.event_name)).inc()
        delay = 0.2
        while not self.stopping.is_set():
            try:
                self.inbox.finish(event.seq, error)
                return
            except Exception:  # ledger blip: the row stays `new` until this succeeds
                log.exception("could not mark a webhook event as handled; retrying")
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _later(self, event: InboxEvent, attempt: int) -> None:
        if self.stopping.is_set():
            return
        delay = self.backoff_s * 2 ** (attempt - 1)
        holder: list[threading.Timer] = []

        def fire() -> None:
            with self._lock:
                self._timers.discard(holder[0])
            self.submit(event, attempt)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        holder.append(timer)
        with self._lock:
            self._timers.add(timer)
        timer.start()


_KNOWN = {"follow", "unfollow", "user_send_text", "user_submit_info", "user_received_message",
          "user_seen_message", "user_click_chatnow"}


def _event_label(name: str) -> str:
    """Bounded label values: Zalo's event names are many; unknown ones share one label."""
    if name in _KNOWN:
        return name
    return "user_send_other" if name.startswith("user_send_") else "other"
