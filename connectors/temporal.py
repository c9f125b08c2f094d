"""Dates and times in Debezium's adaptive encodings (debezium.md §1.6).

timestamptz → ISO-8601 string normalised to UTC (ZonedTimestamp); timestamp → µs (or ms for
precision ≤ 3) since the epoch of its wall clock; date → days; time → µs/ms past midnight;
interval → µs with 30.4375-day months (MicroDuration).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from connectors.codec import Codec, python_default

_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)
# Debezium's sentinels for ±infinity timestamps.
_POS_INFINITY_US, _NEG_INFINITY_US = 9223372036825200000, -9223372036832400000


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


def timestamptz_text(value: str) -> str:
    # The session runs in UTC: fast path (a slice compare is half the cost of endswith here).
    if value[-3:] == "+00" and len(value) >= 22 and value[4] == "-":
        return f"{value[:10]}T{value[11:-3]}Z"
    if value in ("infinity", "-infinity") or value.endswith(" BC"):
        return value
    return zoned_iso(_parse_pg_datetime(value))


def timestamptz_python(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return zoned_iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    return python_default(value)


def _epoch_units(moment: datetime, per_second: int) -> int:
    micros = (moment.replace(tzinfo=None) - _EPOCH) // _US
    return micros if per_second == 1_000_000 else micros // (1_000_000 // per_second)


def timestamp_codec(per_second: int) -> Codec:
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
        return python_default(value)

    return Codec("int64", from_text, from_python, name, 1)


def date_days(value: Any) -> Any:
    if isinstance(value, str):
        if value in ("infinity", "-infinity") or value.endswith(" BC"):
            return value
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.toordinal() - _EPOCH_ORDINAL
    return python_default(value)


def _time_micros(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value // _US
    if isinstance(value, str):
        if value.startswith("24:00:00"):
            return 86_400_000_000
        value = time.fromisoformat(value)
    if isinstance(value, time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    return python_default(value)


def time_codec(per_second: int) -> Codec:
    if per_second == 1_000_000:
        return Codec("int64", _time_micros, _time_micros, "io.debezium.time.MicroTime", 1)

    def millis(value: Any) -> Any:
        micros = _time_micros(value)
        return micros // 1000 if isinstance(micros, int) else micros

    return Codec("int32", millis, millis, "io.debezium.time.Time", 1)


def timetz_text(value: str) -> str:
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


def interval_micros(value: Any) -> Any:
    """MicroDuration: Debezium counts a month as 30.4375 days (365.25 / 12)."""
    if isinstance(value, timedelta):
        return value // _US
    match = _INTERVAL.match(value) if isinstance(value, str) else None
    if not match:
        return python_default(value)
    part = {k: v for k, v in match.groupdict().items() if v is not None}
    months = int(part.get("y", 0)) * 12 + int(part.get("mo", 0))
    days = int(part.get("d", 0)) + months * 30.4375
    clock = (int(part.get("h", 0)) * 3600 + int(part.get("mi", 0)) * 60) * 1_000_000
    clock += int(Decimal(part.get("s", "0")) * 1_000_000)
    if part.get("sign") == "-":
        clock = -clock
    return int(days * 86_400_000_000) + clock
