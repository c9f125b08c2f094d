"""Deliver one notification and make its outcome durable (worker threads).

Every outcome ends in exactly one durable place before the record may be committed:

- sent                          → ledger `sent` (+ one row per attempt);
- DeferError (rate/quota/night) → ledger `deferred`, copy in `<topic>.retry` due at `until`;
- other transient failure       → ledger `failed`, copy in `<topic>.retry` after
                                  `dispatch.retry_delays_s[round]`; rounds exhausted → DLQ;
- permanent (no recipient, every channel refused, config) → ledger `dead`, copy in the DLQ;
- a dossier with an earlier notification still waiting in the retry topic → this one
  waits behind it (`deferred`, reason `parked`), so a citizen never reads a later
  notice of a dossier before an earlier one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.consume.records import SourceRecord
from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.dlq.producer import Failure, OutcomeProducer
from bridge.errors import (AuthError, BadInputError, BridgeError, DeferError, PermanentError,
                           RecipientError)
from bridge.ledger import Ledger, StoredNotification
from bridge.ledger.tables import DEAD, DEFERRED, FAILED
from bridge.phone import mask_phone

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkItem:
    record: SourceRecord
    stored: StoredNotification
    epoch: int

    @property
    def tp(self) -> tuple[str, int]:
        return self.record.tp


class Settler:
    def __init__(self, ledger: Ledger, dispatcher: Any, outcomes: OutcomeProducer,
                 retry_delays_s: list[float], *, on_settled: Callable[[WorkItem], None],
                 on_skipped: Callable[[WorkItem], None], is_current: Callable[[WorkItem], bool],
                 stopping: threading.Event, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.outcomes = outcomes
        self.delays = list(retry_delays_s)
        self._settled = on_settled
        self._skipped = on_skipped
        self._is_current = is_current
        self._stopping = stopping
        self._clock = clock

    def handle(self, item: WorkItem) -> None:
        if not self._is_current(item):
            self._skipped(item)  # partition revoked or shutting down: hand it back
            return
        n = item.stored.notification
        ctx = {"dossier_code": n.dossier_code, "idempotency_key": n.idempotency_key,
               "kind": n.kind, "phone": mask_phone(n.phone)}
        try:
            if self._durably(lambda: self.ledger.earlier_parked(item.stored.dossier_key,
                                                                item.stored.seq)):
                self._park(item)
                return
            try:
                outcome = self.dispatcher.deliver(n)
            except DeferError as exc:
                self._defer(item, exc)
            except RecipientError as exc:
                self._dead(item, "no_recipient", exc, _attempts(exc))
            except BadInputError as exc:
                self._dead(item, "bad_input", exc, _attempts(exc))
            except (PermanentError, AuthError) as exc:
                self._dead(item, "permanent", exc, _attempts(exc))
            except Exception as exc:  # transient, or a bug: retry rounds, then the DLQ
                if not isinstance(exc, BridgeError):
                    log.exception("unexpected error delivering a notification", extra=ctx)
                self._failed(item, exc)
            else:
                self._record_outcome(item, outcome)
        except _Stopped:
            log.warning("stopping before the outcome was recorded; the record will be "
                        "processed again", extra=ctx)

    # --- outcomes ------------------------------------------------------------------------
    def _record_outcome(self, item: WorkItem, outcome: DeliveryOutcome) -> None:
        if outcome.status == "sent":
            self._durably(lambda: self.ledger.record_sent(item.stored.key, outcome))
            self._settled(item)
            return
        last = outcome.attempts[-1] if outcome.attempts else None
        error = PermanentError(outcome.reason or "every channel refused",
                               code=last.error_code if last else None)
        error_class = "AuthError" if last is not None and last.result == "auth" else "RecipientError"
        self._dead(item, "channels_refused", error, outcome.attempts, error_class=error_class)

    def _defer(self, item: WorkItem, exc: DeferError) -> None:
        self._durably(lambda: self.ledger.record_unsent(
            item.stored.key, DEFERRED, error_class=exc.error_class, error_message=exc.message,
            attempts=_attempts(exc)))
        due_ms = int(exc.until.timestamp() * 1000)
        self._to_retry(item, _failure(item, "deferred", exc), due_ms, item.stored.rounds)

    def _failed(self, item: WorkItem, exc: Exception) -> None:
        error_class = exc.error_class if isinstance(exc, BridgeError) else type(exc).__name__
        message = exc.message if isinstance(exc, BridgeError) else str(exc)
        rounds = self._durably(lambda: self.ledger.record_unsent(
            item.stored.key, FAILED, error_class=error_class, error_message=message,
            attempts=_attempts(exc), count_round=True))
        if rounds > len(self.delays):
            self._dead(item, "retries_exhausted", exc, [], rounds=rounds)
            return
        due_ms = int((self._clock() + self.delays[rounds - 1]) * 1000)
        self._to_retry(item, _failure(item, "failed", exc, attempts=rounds), due_ms, rounds)

    def _park(self, item: WorkItem) -> None:
        message = "an earlier notification of this dossier is waiting in the retry topic"
        self._durably(lambda: self.ledger.record_unsent(
            item.stored.key, DEFERRED, error_class="ParkedBehind", error_message=message))
        failure = Failure("parked", "ParkedBehind", message, "deliver",
                          dossier_code=item.stored.notification.dossier_code,
                          kind=item.stored.notification.kind, idempotency_key=item.stored.key)
        self._to_retry(item, failure, int(self._clock() * 1000), item.stored.rounds)

    def _dead(self, item: WorkItem, reason: str, exc: BaseException, tried: list[Attempt], *,
              error_class: str | None = None, rounds: int | None = None) -> None:
        failure = _failure(item, reason, exc, error_class=error_class,
                           attempts=rounds if rounds is not None else item.stored.rounds + 1)
        self._durably(lambda: self.ledger.record_unsent(
            item.stored.key, DEAD, error_class=failure.error_class, error_message=failure.message,
            attempts=tried))
        log.warning("notification dead-lettered", extra={
            "dossier_code": failure.dossier_code, "idempotency_key": item.stored.key,
            "reason": reason, "error_class": failure.error_class})
        self.outcomes.dead_letter(item.record, failure, on_durable=lambda: self._settled(item))

    def _to_retry(self, item: WorkItem, failure: Failure, due_ms: int, round_: int) -> None:
        self.outcomes.retry(item.record, failure, due_ms=due_ms, round_=round_,
                            on_durable=lambda: self._settled(item))

    # --- ledger writes survive a database blip ---------------------------------------------
    def _durably(self, fn: Callable[[], T]) -> T:
        delay = 0.2
        while True:
            try:
                return fn()
            except Exception:
                log.exception("ledger write failed; retrying")
                if self._stopping.wait(delay):
                    raise _Stopped() from None
                delay = min(delay * 2, 5.0)


class _Stopped(Exception):
    pass


def _attempts(exc: BaseException) -> list[Attempt]:
    return list(getattr(exc, "attempts", None) or [])


def _failure(item: WorkItem, reason: str, exc: BaseException, *, error_class: str | None = None,
             attempts: int = 1) -> Failure:
    n = item.stored.notification
    if isinstance(exc, BridgeError):
        cls, message, code = exc.error_class, exc.message, exc.code
    else:
        cls, message, code = type(exc).__name__, str(exc), None
    return Failure(reason, error_class or cls, message, "deliver", code=code, attempts=attempts,
                   dossier_code=n.dossier_code, kind=n.kind, idempotency_key=n.idempotency_key)
