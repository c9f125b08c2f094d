"""Header names of the retry and dead-letter records (schemas/dlq-record.schema.json).

In the spirit of Kafka Connect's ``__connect.errors.*``: every value is a UTF-8 string
(numbers as decimal digits), the record keeps the original key and value bytes and the
original headers. Connect equivalents: ``onestop.original.topic`` ↔
``__connect.errors.topic``, ``onestop.error.class`` ↔
``__connect.errors.exception.class.name``, ``onestop.error.message`` ↔
``__connect.errors.exception.message``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

PREFIX = "onestop."

# Where the record was first read (carried unchanged through retry rounds).
ORIGINAL_TOPIC = "onestop.original.topic"
ORIGINAL_PARTITION = "onestop.original.partition"
ORIGINAL_OFFSET = "onestop.original.offset"
# Why it failed (DLQ records; the last failure for retry records).
ERROR_CLASS = "onestop.error.class"        # BadInputError, RecipientError, TransportError …
ERROR_CODE = "onestop.error.code"          # upstream code (Zalo's -118 …), absent if none
ERROR_MESSAGE = "onestop.error.message"
ERROR_REASON = "onestop.error.reason"      # one of REASONS
ERROR_STAGE = "onestop.error.stage"        # decode | notify | deliver
ERROR_ATTEMPTS = "onestop.error.attempts"  # processing rounds that failed (1 = first try)
ERROR_TIME = "onestop.error.time"          # ISO 8601 UTC, e.g. 2026-11-28T03:04:05.123Z
# What it was about, when known (filters of `onestop-bridge dlq`).
DOSSIER_CODE = "onestop.dossier-code"
KIND = "onestop.kind"
IDEMPOTENCY_KEY = "onestop.idempotency-key"
# Delayed retry topic only.
RETRY_DUE_MS = "onestop.retry.due-ms"      # epoch milliseconds: not to be processed before
RETRY_ROUND = "onestop.retry.round"        # retry rounds used so far
RETRY_REASON = "onestop.retry.reason"      # deferred | failed | parked
# Set by `onestop-bridge dlq replay` on the republished record: "<partition>:<offset>".
REPLAYED_FROM = "onestop.replayed-from"

# Low-cardinality reasons (also the `reason` label of onestop_dlq_records_total).
REASONS = ("malformed_event", "bad_input", "no_recipient", "channels_refused", "permanent",
           "retries_exhausted")

Headers = list[tuple[str, bytes]]


def to_dict(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Last value wins; bytes decoded as UTF-8 (undecodable bytes replaced)."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            continue
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


def foreign(headers: Sequence[tuple[str, bytes | None]] | None) -> Headers:
    """The record's own headers (from Debezium/Connect), without ours."""
    return [(k, v if v is not None else b"") for k, v in headers or () if not k.startswith(PREFIX)]


def encode(values: dict[str, object | None]) -> Headers:
    return [(k, str(v).encode("utf-8")) for k, v in values.items() if v is not None]


def iso_now(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
