"""Deliver one notification and decide where its outcome goes (worker threads).

Every outcome ends in exactly one durable place before the record may be committed:

- sent                          → ledger `sent` (+ one row per attempt);
- DeferError (rate/quota/night) → ledger `deferred`, copy in `<topic>.retry` due at `until`;
- other transient failure       → ledger `failed`, copy in `<topic>.retry` after
                                  `dispatch.retry_delays_s[round]`; rounds exhausted → DLQ;
- permanent (no recipient, every channel refused, config) → ledger `dead`, copy in the DLQ;
- a dossier with an earlier notification still waiting in the retry topic → this one
  waits behind it (`deferred`, reason `parked`), so a citizen never reads a later
  notice of a dossier before an earlier one.

Workers never touch the ledger: they hand a `Settled` to the consumer loop, which
writes the outcomes of many workers in one transaction, then produces retry/DLQ copies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.consume.parked import Parked
from bridge.consume.records import SourceRecord
from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.dlq.producer import Failure
from bridge.errors import (AuthError, BadInputError, BridgeError, DeferError, PermanentError,
                           RecipientError)
from bridge.ledger import StoredNotification
from bridge.ledger.outcomes import OutcomeRow, sent_row
from bridge.ledger.tables import DEAD, DEFERRED, FAILED
from bridge.phone import mask_phone

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkItem:
    record: SourceRecord
    stored: StoredNotification
    epoch: int

    @property
    def tp(self) -> tuple[str, int]:
        return self.record.tp


@dataclass(frozen=True, slots=True)
class Settled:
    """A decided outcome: the ledger row, and where the record's copy goes (if anywhere)."""

    item: WorkItem
    row: OutcomeRow
    route: str                      # "done" | "retry" | "dlq"
    failure: Failure | None = None
    due_ms: int | None = None
    round_: int = 0


class Settler:
    def __init__(self, dispatcher: Any, parked: Parked, retry_delays_s: list[float], *,
                 report: Callable[[Settled], None], on_skipped: Callable[[WorkItem], None],
                 is_current: Callable[[WorkItem], bool],
                 confirm_parked: Callable[[str, int], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.dispatcher = dispatcher
        self.parked = parked
        self.delays = list(retry_delays_s)
        self._report = report
        self._skipped = on_skipped
        self._is_current = is_current
        self._confirm = confirm_parked
        self._clock = clock

    def handle(self, item: WorkItem) -> None:
        if not self._is_current(item):
            self._skipped(item)  # partition revoked or shutting down: hand it back
            return
        stored = item.stored
        if self.parked.blocks(stored.dossier_key, stored.seq, self._confirm):
            self._park(item)
            return
        try:
            outcome = self.dispatcher.deliver(stored.notification)
        except DeferError as exc:
            self._to_retry(item, DEFERRED, _failure(item, "deferred", exc),
                           int(exc.until.timestamp() * 1000), stored.rounds, _attempts(exc))
        except RecipientError as exc:
            self._dead(item, "no_recipient", exc, _attempts(exc))
        except BadInputError as exc:
            self._dead(item, "bad_input", exc, _attempts(exc))
        except (PermanentError, AuthError) as exc:
            self._dead(item, "permanent", exc, _attempts(exc))
        except Exception as exc:  # transient, or a bug: retry rounds, then the DLQ
            if not isinstance(exc, BridgeError):
                log.exception("unexpected error delivering a notification", extra={
                    "dossier_code": stored.notification.dossier_code,
                    "idempotency_key": stored.key, "phone": mask_phone(stored.notification.phone)})
            self._failed(item, exc)
        else:
            self._delivered(item, outcome)

    # --- outcomes ------------------------------------------------------------------------
    def _delivered(self, item: WorkItem, outcome: DeliveryOutcome) -> None:
        if outcome.status == "sent":
            self.parked.discard(item.stored.dossier_key, item.stored.seq)
            self._report(Settled(item, sent_row(item.stored.key, outcome), "done"))
            return
        last = outcome.attempts[-1] if outcome.attempts else None
        error = PermanentError(outcome.reason or "every channel refused",
                               code=last.error_code if last else None)
        self._dead(item, "channels_refused", error, outcome.attempts,
                   error_class=_refusal_class(outcome.attempts))

    def _failed(self, item: WorkItem, exc: Exception) -> None:
        rounds = item.stored.rounds + 1
        if rounds > len(self.delays):
            self._dead(item, "retries_exhausted", exc, _attempts(exc), rounds=rounds,
                       count_round=True)
            return
        due_ms = int((self._clock() + self.delays[rounds - 1]) * 1000)
        self._to_retry(item, FAILED, _failure(item, "failed", exc, attempts=rounds), due_ms,
                       rounds, _attempts(exc), count_round=True)

    def _park(self, item: WorkItem) -> None:
        n = item.stored.notification
        failure = Failure("parked", "ParkedBehind",
                          "an earlier notification of this dossier is waiting in the retry topic",
                          "deliver", dossier_code=n.dossier_code, kind=n.kind,
                          idempotency_key=n.idempotency_key, attempts=item.stored.rounds)
        self._to_retry(item, DEFERRED, failure, int(self._clock() * 1000), item.stored.rounds, [])

    def _to_retry(self, item: WorkItem, status: str, failure: Failure, due_ms: int, round_: int,
                  attempts: list[Attempt], *, count_round: bool = False) -> None:
        self.parked.add(item.stored.dossier_key, item.stored.seq, item.tp)
        row = OutcomeRow(item.stored.key, status, error_class=failure.error_class,
                         error_message=failure.message, attempts=tuple(attempts),
                         count_round=count_round)
        self._report(Settled(item, row, "retry", failure, due_ms, round_))

    def _dead(self, item: WorkItem, reason: str, exc: BaseException, attempts: list[Attempt], *,
              error_class: str | None = None, rounds: int | None = None,
              count_round: bool = False) -> None:
        self.parked.discard(item.stored.dossier_key, item.stored.seq)
        failure = _failure(item, reason, exc, error_class=error_class,
                           attempts=rounds if rounds is not None else item.stored.rounds + 1)
        row = OutcomeRow(item.stored.key, DEAD, error_class=failure.error_class,
                         error_message=failure.message, attempts=tuple(attempts),
                         count_round=count_round)
        # A dossier without a phone is the desk's routine (a few % all day: 600-800 WARNING
        # lines an hour in a soak, all of them this); its alert is the share, not each one.
        log.log(logging.INFO if reason == "no_recipient" else logging.WARNING,
                "notification dead-lettered", extra={
            "dossier_code": failure.dossier_code, "idempotency_key": item.stored.key,
            "reason": reason, "error_class": failure.error_class})
        self._report(Settled(item, row, "dlq", failure))


def _attempts(exc: BaseException) -> list[Attempt]:
    return list(getattr(exc, "attempts", None) or [])


def _refusal_class(attempts: list[Attempt]) -> str:
    """The error class operators filter a `channels_refused` record by, most actionable
    first: a template, payload or account problem on some channel (fix it, then replay), a
    refused token, else a citizen no channel reaches. It was RecipientError even for a
    template Zalo did not know (-109)."""
    if any(a.result == "permanent" for a in attempts):
        return "PermanentError"
    return "AuthError" if attempts and attempts[-1].result == "auth" else "RecipientError"


def _failure(item: WorkItem, reason: str, exc: BaseException, *, error_class: str | None = None,
             attempts: int = 1) -> Failure:
    n = item.stored.notification
    if isinstance(exc, BridgeError):
        cls, message, code = exc.error_class, exc.message, exc.code
    else:
        cls, message, code = type(exc).__name__, str(exc), None
    return Failure(reason, error_class or cls, message, "deliver", code=code, attempts=attempts,
                   dossier_code=n.dossier_code, kind=n.kind, idempotency_key=n.idempotency_key)
