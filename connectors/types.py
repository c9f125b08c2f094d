"""Column values → Debezium's default JSON encodings (debezium.md §1.6), with Connect schemas.

Two front ends share one set of codecs: PostgreSQL's text output (pgoutput tuples and
the snapshot, which selects ``col::text`` so both paths see the same bytes) and the
Python values SQLAlchemy returns to the polling connector. Defaults are Debezium's:
decimal.handling.mode=precise, time.precision.mode=adaptive, binary as base64.
"""

from __future__ import annotations

import base64
import re
from binascii import b2a_base64
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.codec import (
    AS_BOOL,
    AS_DECIMAL,
    AS_INT,
    AS_TEXT,
    AS_UTC_TIMESTAMP,
    TOAST_PLACEHOLDER,
    Codec,
    as_text,
    python_default,
)
from connectors.temporal import (
    date_days,
    interval_micros,
    time_codec,
    timestamp_codec,
    timestamptz_python,
    timestamptz_text,
    timetz_text,
)

__all__ = ["TOAST_PLACEHOLDER", "Codec", "as_text", "builtin_type", "decimal_base64", "enum_codec",
           "pg_codec", "sqlalchemy_codec", "unscaled_bytes"]


# --- scalar conversions ------------------------------------------------------------------

def _bool_text(value: str) -> bool:
    return value == "t"


def _float_text(value: str) -> float:
    return float(value)


def unscaled_bytes(unscaled: int) -> bytes:
    """Big-endian two's complement in the fewest bytes, like Java's BigInteger.toByteArray."""
    bits = unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()
    return unscaled.to_bytes(bits // 8 + 1, "big", signed=True)


def unscaled_base64(unscaled: int) -> str:
    """Connect's Decimal value of an unscaled integer (binascii: base64.b64encode's wrapper
    costs a tenth of a microsecond per numeric column)."""
    return b2a_base64(unscaled_bytes(unscaled), newline=False).decode()


def decimal_base64(number: Decimal, scale: int) -> str:
    return unscaled_base64(int(number.scaleb(scale).to_integral_value()))


def _to_decimal(value: Any) -> Decimal | None:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None  # NaN has no Connect Decimal form


def _decimal_codec(scale: int, precision: int | None) -> Codec:
    def encode(value: Any) -> str | None:
        number = _to_decimal(value)
        return None if number is None else decimal_base64(number, scale)

    def from_text(value: str) -> str | None:
        # numeric(p,s) prints exactly s fraction digits: the unscaled integer is the digits.
        point = value.find(".")
        if (point < 0 and scale == 0) or (point >= 0 and len(value) - point - 1 == scale):
            try:
                unscaled = int(value.replace(".", "", 1))
            except ValueError:
                return encode(value)
            return unscaled_base64(unscaled)
        return encode(value)

    params = {"scale": str(scale)}
    if precision:
        params["connect.decimal.precision"] = str(precision)
    return Codec("bytes", from_text, encode, "org.apache.kafka.connect.data.Decimal", 1, params,
                 form=AS_DECIMAL)


def _variable_decimal(value: Any) -> dict[str, Any] | None:
    number = _to_decimal(value)
    if number is None:
        return None
    scale = max(0, -int(number.as_tuple().exponent))
    return {"scale": scale, "value": decimal_base64(number, scale)}


_VARIABLE_DECIMAL = Codec(
    "struct", _variable_decimal, _variable_decimal, "io.debezium.data.VariableScaleDecimal", 1,
    fields=({"type": "int32", "optional": False, "field": "scale"},
            {"type": "bytes", "optional": False, "field": "value"}))


def _money_text(value: str) -> str | None:
    negative = value.startswith("-") or value.startswith("(")
    digits = re.sub(r"[^0-9.]", "", value)
    return decimal_base64(Decimal(("-" if negative else "") + digits), 2) if digits else None


def _bytea_text(value: str) -> str:
    raw = bytes.fromhex(value[2:]) if value.startswith("\\x") else value.encode()
    return base64.b64encode(raw).decode()


# --- the table of codecs -------------------------------------------------------------------

_INT16 = Codec("int16", int, python_default, form=AS_INT)
_INT32 = Codec("int32", int, python_default, form=AS_INT)
_INT64 = Codec("int64", int, python_default, form=AS_INT)
_BOOL = Codec("boolean", _bool_text, python_default, form=AS_BOOL)
_FLOAT32 = Codec("float", _float_text, python_default)
_FLOAT64 = Codec("double", _float_text, python_default)
_STRING = Codec("string", as_text, python_default, form=AS_TEXT)
_JSON = Codec("string", as_text, python_default, "io.debezium.data.Json", 1, form=AS_TEXT)
_UUID = Codec("string", as_text, python_default, "io.debezium.data.Uuid", 1, form=AS_TEXT)
_XML = Codec("string", as_text, python_default, "io.debezium.data.Xml", 1, form=AS_TEXT)
_BYTES = Codec("bytes", _bytea_text, python_default)
_DATE = Codec("int32", date_days, date_days, "io.debezium.time.Date", 1)
_ZONED = Codec("string", timestamptz_text, timestamptz_python, "io.debezium.time.ZonedTimestamp", 1,
               form=AS_UTC_TIMESTAMP)
_ZONED_TIME = Codec("string", timetz_text, python_default, "io.debezium.time.ZonedTime", 1)
_INTERVAL_CODEC = Codec("int64", interval_micros, interval_micros, "io.debezium.time.MicroDuration", 1)
_MONEY = Codec("bytes", _money_text, lambda v: decimal_base64(Decimal(v), 2),
               "org.apache.kafka.connect.data.Decimal", 1, {"scale": "2"})

_BY_OID: dict[int, Codec] = {
    16: _BOOL, 17: _BYTES, 20: _INT64, 21: _INT16, 23: _INT32, 26: _INT64, 114: _JSON, 142: _XML,
    700: _FLOAT32, 701: _FLOAT64, 790: _MONEY, 1082: _DATE, 1184: _ZONED, 1186: _INTERVAL_CODEC,
    1266: _ZONED_TIME, 2950: _UUID, 3802: _JSON,
}


def enum_codec(labels: Sequence[str]) -> Codec:
    """An enum: its label as a string, the labels in their sort order in the schema (Debezium's
    `io.debezium.data.Enum`)."""
    return Codec("string", as_text, python_default, "io.debezium.data.Enum", 1,
                 {"allowed": ",".join(labels)}, form=AS_TEXT)


def _numeric(typmod: int) -> Codec:
    if typmod < 4:
        return _VARIABLE_DECIMAL
    return _decimal_codec((typmod - 4) & 0xFFFF, (typmod - 4) >> 16)


def _adaptive(typmod: int) -> int:
    """time.precision.mode=adaptive: precision 0-3 in ms, else µs."""
    return 1000 if 0 <= typmod <= 3 else 1_000_000


# Types whose codec depends on the typmod.
_BY_TYPMOD: dict[int, Callable[[int], Codec]] = {
    1700: _numeric, 1114: lambda m: timestamp_codec(_adaptive(m)), 1083: lambda m: time_codec(_adaptive(m)),
}


def builtin_type(type_oid: int) -> bool:
    """Whether `pg_codec` knows the type by its oid alone (else the catalog may say more: a
    domain's base type, an enum's labels)."""
    return type_oid in _BY_OID or type_oid in _BY_TYPMOD


def pg_codec(type_oid: int, typmod: int, enum_labels: Sequence[str] | None = None) -> Codec:
    """The codec of a PostgreSQL column (a domain's is its base type's, which the catalog
    resolves); other types (arrays, ranges, composites) travel as text."""
    if enum_labels is not None:
        return enum_codec(enum_labels)
    by_typmod = _BY_TYPMOD.get(type_oid)
    if by_typmod is not None:
        return by_typmod(typmod)
    return _BY_OID.get(type_oid, _STRING)


def sqlalchemy_codec(sa_type: Any) -> Codec:
    """The codec of a column reflected by SQLAlchemy (the polling connector)."""
    from sqlalchemy import types as t

    if isinstance(sa_type, t.Boolean):
        return _BOOL
    if isinstance(sa_type, t.SmallInteger):
        return _INT16
    if isinstance(sa_type, t.BigInteger):
        return _INT64
    if isinstance(sa_type, t.Integer):
        return _INT32
    if isinstance(sa_type, t.Numeric) and not isinstance(sa_type, t.Float):
        if sa_type.scale is None:
            return _VARIABLE_DECIMAL
        return _decimal_codec(sa_type.scale, sa_type.precision)
    if isinstance(sa_type, t.Float):
        return _FLOAT64
    if isinstance(sa_type, t.DateTime):
        return _ZONED if sa_type.timezone else timestamp_codec(1_000_000)
    if isinstance(sa_type, t.Date):
        return _DATE
    if isinstance(sa_type, t.Time):
        return time_codec(1_000_000)
    if isinstance(sa_type, t.Interval):
        return _INTERVAL_CODEC
    if isinstance(sa_type, t.JSON):
        return _JSON
    if isinstance(sa_type, t.LargeBinary):
        return _BYTES
    if isinstance(sa_type, t.Enum) and sa_type.enums:
        return enum_codec(sa_type.enums)
    return _STRING
