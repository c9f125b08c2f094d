"""Debezium/Kafka Connect value encodings → Python values (debezium.md §1.6).

Only a schema says what an encoded value means; without one, values pass through
unchanged (an integer stays an integer — the mapping layer decides, by
configuration, whether it is a date).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.errors import BadInputError
from bridge.model import UNAVAILABLE

TOAST_PLACEHOLDER = "__debezium_unavailable_value"
# A binary column's placeholder is the text's bytes, base64 under JsonConverter (the
# connector writes both: connectors.codec.Codec.unavailable).
TOAST_PLACEHOLDER_BYTES = base64.b64encode(TOAST_PLACEHOLDER.encode()).decode()
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
# Debezium writes ±infinity timestamps as these sentinels.
_INFINITY = {9223372036825200000, -9223372036832400000}

# Semantic names → how many of the integer's units make one second.
_INT_TIMESTAMPS = {
    "io.debezium.time.Timestamp": 1_000,
    "org.apache.kafka.connect.data.Timestamp": 1_000,
    "io.debezium.time.MicroTimestamp": 1_000_000,
    "io.debezium.time.NanoTimestamp": 1_000_000_000,
}
_DATES = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
_ZONED = {"io.debezium.time.ZonedTimestamp"}


def wall_clock_from_epoch(value: int, units_per_second: int) -> datetime | None:
    """A timestamp *without* time zone: Debezium encodes the wall-clock as if it were UTC.

    Returned naive; the mapping layer attaches the source database's time zone.
    """
    if value in _INFINITY:
        return None
    seconds, rest = divmod(int(value), units_per_second)
    micros = rest * 1_000_000 // units_per_second
    return _EPOCH + timedelta(seconds=seconds, microseconds=micros)


def date_from_days(days: int) -> date:
    return _EPOCH_DATE + timedelta(days=int(days))


def parse_iso_datetime(text: str) -> datetime:
    """ISO-8601 as Debezium's ZonedTimestamp writes it (``2024-06-12T01:30:00.123456Z``)."""
    try:
        return datetime.fromisoformat(text)  # 3.11+ reads "Z" and any fraction length
    except ValueError:
        raise BadInputError(f"not an ISO-8601 timestamp: {text!r}") from None


def decimal_from_base64(text: str, scale: int) -> Decimal:
    """Connect's Decimal: base64 of the unscaled big-endian two's-complement integer."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInputError(f"not a base64 decimal: {text!r}") from None
    unscaled = int.from_bytes(raw, "big", signed=True) if raw else 0
    return Decimal(unscaled).scaleb(-int(scale))


def to_decimal(value: Any) -> Decimal:
    """A decimal sent as a string or a double (decimal.handling.mode=string|double)."""
    if isinstance(value, bool):
        raise BadInputError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadInputError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise BadInputError(f"not a finite number: {value!r}")
    return number


def variable_scale_decimal(value: dict[str, Any]) -> Decimal:
    return decimal_from_base64(value["value"], int(value["scale"]))


def is_variable_scale_struct(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"scale", "value"}


def decode_field(value: Any, schema: dict[str, Any] | None) -> Any:
    """One column value, typed by its Connect field schema when there is one."""
    if value is None:
        return None
    if value == TOAST_PLACEHOLDER or value == TOAST_PLACEHOLDER_BYTES:
        return UNAVAILABLE
    if schema is None or (name := schema.get("name")) is None:
        if is_variable_scale_struct(value):
            return variable_scale_decimal(value)
        return value
    if name in _ZONED:
        return parse_iso_datetime(value)
    if name in _INT_TIMESTAMPS:
        return wall_clock_from_epoch(value, _INT_TIMESTAMPS[name])
    if name in _DATES:
        return date_from_days(value)
    if name == _DECIMAL:
        # JsonConverter writes BASE64 strings by default; decimal.format=NUMERIC writes numbers.
        if isinstance(value, str):
            scale = int((schema.get("parameters") or {}).get("scale", 0))
            return decimal_from_base64(value, scale)
        return to_decimal(value)
    if name == _VARIABLE_DECIMAL:
        return variable_scale_decimal(value)
    return value


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
