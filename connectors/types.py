"""Column values → Debezium's default JSON encodings (debezium.md §1.6), with Connect schemas.

Two front ends share one set of codecs: PostgreSQL's text output (pgoutput tuples and
the snapshot, which selects ``col::text`` so both paths see the same bytes) and the
Python values SQLAlchemy returns to the polling connector. Defaults are Debezium's:
decimal.handling.mode=precise, time.precision.mode=adaptive, binary as base64.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

TOAST_PLACEHOLDER = "__debezium_unavailable_value"
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)
# Debezium's sentinels for ±infinity timestamps.
_POS_INFINITY_US, _NEG_INFINITY_US = 9223372036825200000, -9223372036832400000


@dataclass(frozen=True, slots=True)
class Codec:
    """How one column is described (Connect schema) and encoded (JSON value)."""

    type: str
    from_text: Callable[[str], Any]
    from_python: Callable[[Any], Any]
    name: str | None = None
    version: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    fields: tuple[dict[str, Any], ...] = ()

    def field_schema(self, column: str, optional: bool) -> dict[str, Any]:
        node: dict[str, Any] = {"type": self.type}
        if self.fields:
            node["fields"] = list(self.fields)
        node["optional"] = optional
        if self.name:
            node["name"] = self.name
        if self.version is not None:
            node["version"] = self.version
        if self.parameters:
            node["parameters"] = dict(self.parameters)
        node["field"] = column
        return node


# --- scalar conversions ------------------------------------------------------------------

def as_text(value: str) -> str:
    """Text columns: the identity (the streamer skips calling it)."""
    return value


def _bool_text(value: str) -> bool:
    return value == "t"


def _python_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _float_text(value: str) -> float:
    return float(value)


def unscaled_bytes(unscaled: int) -> bytes:
    """Big-endian two's complement in the fewest bytes, like Java's BigInteger.toByteArray."""
    bits = unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()
    return unscaled.to_bytes(bits // 8 + 1, "big", signed=True)


def decimal_base64(number: Decimal, scale: int) -> str:
    unscaled = int(number.scaleb(scale).to_integral_value())
    return base64.b64encode(unscaled_bytes(unscaled)).decode()


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
            return base64.b64encode(unscaled_bytes(unscaled)).decode()
        return encode(value)

    params = {"scale": str(scale)}
    if precision:
        params["connect.decimal.precision"] = str(precision)
    return Codec("bytes", from_text, encode, "org.apache.kafka.connect.data.Decimal", 1, params)


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


# --- time ----------------------------------------------------------------------------------

def _fraction(micro: int) -> str:
    return f".{micro:06d}".rstrip("0") if micro else ""


def zoned_iso(moment: datetime) -> str:
    """ZonedTimestamp: ISO-8601 normalised to UTC, fraction only when present."""
    utc = moment.astimezone(UTC)
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}{_fraction(utc.microsecond)}Z")


def _parse_pg_datetime(value: str) -> datetime:
    # PostgreSQL ISO output: '2024-06-12 08:30:00.5+07' (offset may carry :MM or :MM:SS).
    return datetime.fromisoformat(value)


def _timestamptz_text(value: str) -> str:
    if value.endswith("+00") and len(value) >= 22 and value[4] == "-":
        return f"{value[:10]}T{value[11:-3]}Z"  # the session runs in UTC: fast path
    if value in ("infinity", "-infinity") or value.endswith(" BC"):
        return value
    return zoned_iso(_parse_pg_datetime(value))


def _timestamptz_python(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return zoned_iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    return _python_default(value)


def _epoch_units(moment: datetime, per_second: int) -> int:
    micros = (moment.replace(tzinfo=None) - _EPOCH) // _US
    return micros if per_second == 1_000_000 else micros // (1_000_000 // per_second)


def _timestamp_codec(per_second: int) -> Codec:
    name = "io.debezium.time.MicroTimestamp" if per_second == 1_000_000 else "io.debezium.time.Timestamp"

    def from_text(value: str) -> int | str:
        if value == "infinity":
            return _POS_INFINITY_US
        if value == "-infinity":
            return _NEG_INFINITY_US
        if value.endswith(" BC"):
            return value
        return _epoch_units(datetime.fromisoformat(value), per_second)

    def from_python(value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            if value.tzinfo is not None:  # an aware value in a naive column: keep its wall clock in UTC
                value = value.astimezone(UTC)
            return _epoch_units(value, per_second)
        return _python_default(value)

    return Codec("int64", from_text, from_python, name, 1)


def _date_days(value: Any) -> Any:
    if isinstance(value, str):
        if value in ("infinity", "-infinity") or value.endswith(" BC"):
            return value
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.toordinal() - _EPOCH_ORDINAL
    return _python_default(value)


def _time_micros(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value // _US
    if isinstance(value, str):
        if value.startswith("24:00:00"):
            return 86_400_000_000
        value = time.fromisoformat(value)
    if isinstance(value, time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    return _python_default(value)


def _time_codec(per_second: int) -> Codec:
    if per_second == 1_000_000:
        return Codec("int64", _time_micros, _time_micros, "io.debezium.time.MicroTime", 1)

    def millis(value: Any) -> Any:
        micros = _time_micros(value)
        return micros // 1000 if isinstance(micros, int) else micros

    return Codec("int32", millis, millis, "io.debezium.time.Time", 1)


def _timetz_text(value: str) -> str:
    match = re.fullmatch(r"(\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?", value)
    if not match:
        return value
    hh, mm, ss, frac, off_h, off_m, off_s = match.groups()
    sign = -1 if off_h.startswith("-") else 1
    offset = sign * (abs(int(off_h)) * 3600 + int(off_m or 0) * 60 + int(off_s or 0))
    seconds = (int(hh) * 3600 + int(mm) * 60 + int(ss) - offset) % 86400
    micro = int((frac or "0").ljust(6, "0")[:6])
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{_fraction(micro)}Z"


_INTERVAL = re.compile(
    r"^(?:(?P<y>[+-]?\d+) years? ?)?(?:(?P<mo>[+-]?\d+) mons? ?)?(?:(?P<d>[+-]?\d+) days? ?)?"
    r"(?:(?P<sign>[+-])?(?P<h>\d+):(?P<mi>\d\d):(?P<s>\d\d(?:\.\d+)?))?$")


def _interval_micros(value: Any) -> Any:
    """MicroDuration: Debezium counts a month as 30.4375 days (365.25 / 12)."""
    if isinstance(value, timedelta):
        return value // _US
    match = _INTERVAL.match(value) if isinstance(value, str) else None
    if not match:
        return _python_default(value)
    part = {k: v for k, v in match.groupdict().items() if v is not None}
    months = int(part.get("y", 0)) * 12 + int(part.get("mo", 0))
    days = int(part.get("d", 0)) + months * 30.4375
    clock = (int(part.get("h", 0)) * 3600 + int(part.get("mi", 0)) * 60) * 1_000_000
    clock += int(Decimal(part.get("s", "0")) * 1_000_000)
    if part.get("sign") == "-":
        clock = -clock
    return int(days * 86_400_000_000) + clock


def _bytea_text(value: str) -> str:
    raw = bytes.fromhex(value[2:]) if value.startswith("\\x") else value.encode()
    return base64.b64encode(raw).decode()


# --- the table of codecs -------------------------------------------------------------------

_INT16 = Codec("int16", int, _python_default)
_INT32 = Codec("int32", int, _python_default)
_INT64 = Codec("int64", int, _python_default)
_BOOL = Codec("boolean", _bool_text, _python_default)
_FLOAT32 = Codec("float", _float_text, _python_default)
_FLOAT64 = Codec("double", _float_text, _python_default)
_STRING = Codec("string", as_text, _python_default)
_JSON = Codec("string", as_text, _python_default, "io.debezium.data.Json", 1)
_UUID = Codec("string", as_text, _python_default, "io.debezium.data.Uuid", 1)
_XML = Codec("string", as_text, _python_default, "io.debezium.data.Xml", 1)
_BYTES = Codec("bytes", _bytea_text, _python_default)
_DATE = Codec("int32", _date_days, _date_days, "io.debezium.time.Date", 1)
_ZONED = Codec("string", _timestamptz_text, _timestamptz_python, "io.debezium.time.ZonedTimestamp", 1)
_ZONED_TIME = Codec("string", _timetz_text, _python_default, "io.debezium.time.ZonedTime", 1)
_INTERVAL_CODEC = Codec("int64", _interval_micros, _interval_micros, "io.debezium.time.MicroDuration", 1)
_MONEY = Codec("bytes", _money_text, lambda v: decimal_base64(Decimal(v), 2),
               "org.apache.kafka.connect.data.Decimal", 1, {"scale": "2"})

_BY_OID: dict[int, Codec] = {
    16: _BOOL, 17: _BYTES, 20: _INT64, 21: _INT16, 23: _INT32, 26: _INT64, 114: _JSON, 142: _XML,
    700: _FLOAT32, 701: _FLOAT64, 790: _MONEY, 1082: _DATE, 1184: _ZONED, 1186: _INTERVAL_CODEC,
    1266: _ZONED_TIME, 2950: _UUID, 3802: _JSON,
}


def pg_codec(type_oid: int, typmod: int) -> Codec:
    """The codec of a PostgreSQL column; unknown types (enums, arrays, domains) travel as text."""
    if type_oid == 1700:  # numeric
        if typmod < 4:
            return _VARIABLE_DECIMAL
        return _decimal_codec((typmod - 4) & 0xFFFF, (typmod - 4) >> 16)
    if type_oid == 1114:  # timestamp: precision 0-3 → ms, else µs (adaptive)
        return _timestamp_codec(1000 if 0 <= typmod <= 3 else 1_000_000)
    if type_oid == 1083:  # time
        return _time_codec(1000 if 0 <= typmod <= 3 else 1_000_000)
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
        return _ZONED if sa_type.timezone else _timestamp_codec(1_000_000)
    if isinstance(sa_type, t.Date):
        return _DATE
    if isinstance(sa_type, t.Time):
        return _time_codec(1_000_000)
    if isinstance(sa_type, t.Interval):
        return _INTERVAL_CODEC
    if isinstance(sa_type, t.JSON):
        return _JSON
    if isinstance(sa_type, t.LargeBinary):
        return _BYTES
    return _STRING
