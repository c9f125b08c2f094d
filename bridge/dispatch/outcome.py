"""What `Dispatcher.deliver` reports: the outcome and every attempt on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bridge.errors import (AuthError, BridgeError, DeferError, NightWindow, RecipientError,
                           RetryableError)

Channel = Literal["zalo_oa", "zns", "sms"]
AttemptResult = Literal["ok", "retryable", "permanent", "unreachable", "rate_limited", "night",
                        "auth"]


@dataclass(frozen=True, slots=True)
class Sent:
    """One send's answer: the provider's message id and, where the provider says what it
    charged (the SMS gateway: per part and per carrier), that price in VND."""

    provider_id: str
    charged: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    channel: str
    result: AttemptResult
    error_code: int | None
    error_message: str | None
    at: datetime
    price_vnd: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    status: Literal["sent", "failed"]
    channel: str | None
    provider_message_id: str | None
    price_vnd: int
    attempts: list[Attempt] = field(default_factory=list)
    # What the notice would have cost by SMS (its SMS text's parts × the SMS price; sent by
    # SMS, what the gateway charged): the baseline its savings count against (bridge/report).
    sms_equivalent_vnd: int = 0

    @property
    def reason(self) -> str | None:
        """Why a failed delivery failed: the last refusal, for the DLQ headers."""
        if self.status == "sent" or not self.attempts:
            return None
        last = self.attempts[-1]
        message = last.error_message or "refused"
        # The clients' messages mostly name their channel already ("sms: HTTP 400 …").
        return message if message.startswith(last.channel) else f"{last.channel}: {message}"


def result_of(exc: BridgeError) -> AttemptResult:
    if isinstance(exc, NightWindow):
        # Every night's first notice of each dossier meets it (online filings): routine,
        # and counted as rate_limited it fired the error-ratio alert every night.
        return "night"
    if isinstance(exc, DeferError):
        return "rate_limited"
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, RetryableError):
        return "retryable"
    if isinstance(exc, RecipientError):
        # This channel cannot reach this person (no Zalo account, not a follower): routine,
        # the next channel carries the notice; not an error operators should be paged for.
        return "unreachable"
    return "permanent"
