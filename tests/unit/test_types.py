"""Each Debezium type encoding of debezium.md §1.6, decoded by its schema."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from bridge.decode.types import (
    TOAST_PLACEHOLDER, date_from_days, decimal_from_base64, decode_field, wall_clock_from_epoch,
)
from bridge.decode.envelope import decode_value
from bridge.errors import BadInputError
from bridge.model import UNAVAILABLE
from events import present


def test_zoned_timestamp_is_an_aware_utc_datetime() -> None:
    value = decode_field("2024-06-12T01:30:00.123456Z", {"name": "io.debezium.time.ZonedTimestamp"})
    assert value == datetime(2024, 6, 12, 1, 30, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("name, value", [
    ("io.debezium.time.Timestamp", 1529507596945),
    ("org.apache.kafka.connect.data.Timestamp", 1529507596945),
    ("io.debezium.time.MicroTimestamp", 1529507596945104),
    ("io.debezium.time.NanoTimestamp", 1529507596945104000),
])
def test_epoch_timestamps_are_wall_clock_times(name: str, value: int) -> None:
    decoded = decode_field(value, {"name": name})
    assert decoded.replace(microsecond=0) == datetime(2018, 6, 20, 15, 13, 16)
    assert decoded.tzinfo is None  # a `timestamp` column has no zone; the mapping adds one


def test_micro_timestamp_keeps_microseconds() -> None:
    assert present(wall_clock_from_epoch(1529507596945104, 1_000_000)).microsecond == 945104


def test_infinity_timestamps_are_unknown() -> None:
    assert decode_field(9223372036825200000, {"name": "io.debezium.time.MicroTimestamp"}) is None


def test_date_is_days_since_epoch() -> None:
    assert decode_field(19886, {"name": "io.debezium.time.Date"}) == date(2024, 6, 12)
    assert date_from_days(0) == date(1970, 1, 1)


@pytest.mark.parametrize("encoded, scale, expected", [
    ("AYHN", 2, Decimal("987.65")),         # bytes 0x0181CD = 98765 (artie-labs/reader#302)
    ("AA==", 2, Decimal("0.00")),
    ("/w==", 0, Decimal("-1")),             # two's complement
    ("ByqI", 2, Decimal("4696.40")),
    ("AdzWUA==", 2, Decimal("312500.00")),
])
def test_connect_decimal_base64_with_scale(encoded: str, scale: int, expected: Decimal) -> None:
    schema = {"name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": str(scale)}}
    assert decode_field(encoded, schema) == expected
    assert decimal_from_base64(encoded, scale) == expected


def test_connect_decimal_as_number_when_decimal_format_numeric() -> None:
    schema = {"name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}
    assert decode_field(1250000.5, schema) == Decimal("1250000.5")


def test_variable_scale_decimal_with_and_without_schema() -> None:
    value = {"scale": 2, "value": "ByqI"}
    assert decode_field(value, {"name": "io.debezium.data.VariableScaleDecimal"}) == Decimal("4696.40")
    assert decode_field(value, None) == Decimal("4696.40")


def test_unchanged_toast_placeholder_is_unavailable() -> None:
    assert decode_field(TOAST_PLACEHOLDER, None) is UNAVAILABLE
    assert decode_field(TOAST_PLACEHOLDER, {"name": "io.debezium.time.ZonedTimestamp"}) is UNAVAILABLE
    binary = "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="  # a bytea column's: the placeholder's bytes
    assert decode_field(binary, {"type": "bytes"}) is UNAVAILABLE
    row = {"id": 1, "scan": binary}  # schemaless: the row's fast path must notice it too
    event = decode_value({"before": None, "after": row, "op": "u", "source": {"table": "attachments"}})
    assert present(event).after == {"id": 1, "scan": UNAVAILABLE}


def test_without_a_schema_integers_stay_integers() -> None:
    assert decode_field(1529507596945104, None) == 1529507596945104
    assert decode_field(19886, {"type": "int32"}) == 19886


def test_bad_encodings_are_bad_input() -> None:
    with pytest.raises(BadInputError):
        decode_field("not a time", {"name": "io.debezium.time.ZonedTimestamp"})
    with pytest.raises(BadInputError):
        decode_field("***", {"name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}})
