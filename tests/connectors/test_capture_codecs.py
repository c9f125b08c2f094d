"""Pure parts of the connector: pgoutput decoding, Debezium value encodings, envelope shape."""

from __future__ import annotations

import base64
import json
import struct
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from bridge.decode.envelope import decode_value
from bridge.decode.types import decimal_from_base64
from bridge.errors import ConfigError
from connectors import pgoutput as po
from connectors.pgcatalog import TableRef
from connectors.envelope import Column, TableSchema, TransactionEvents, envelope_bytes, pg_source
from connectors.types import TOAST_PLACEHOLDER, pg_codec, sqlalchemy_codec, unscaled_bytes
from events import present

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"
NUMERIC_14_2 = ((14 << 16) | 2) + 4


def test_decimal_is_base64_of_minimal_twos_complement_like_java() -> None:
    assert unscaled_bytes(0) == b"\x00"
    assert unscaled_bytes(127) == b"\x7f"
    assert unscaled_bytes(128) == b"\x00\x80"
    assert unscaled_bytes(-128) == b"\x80"
    assert unscaled_bytes(-129) == b"\xff\x7f"
    codec = pg_codec(1700, NUMERIC_14_2)
    assert codec.from_text("150000.50") == base64.b64encode((15000050).to_bytes(4, "big")).decode()
    assert codec.field_schema("fee", True)["parameters"] == {"scale": "2", "connect.decimal.precision": "14"}
    assert codec.from_text("NaN") is None


@given(st.decimals(min_value=-10**11, max_value=10**11, places=2, allow_nan=False))
def test_decimal_round_trips_through_the_bridge_decoder(number: Decimal) -> None:
    encoded = pg_codec(1700, NUMERIC_14_2).from_text(str(number))
    assert decimal_from_base64(encoded, 2) == number


def test_unconstrained_numeric_is_a_variable_scale_decimal() -> None:
    value = pg_codec(1700, -1).from_text("-12.345")
    assert value["scale"] == 3
    assert decimal_from_base64(value["value"], 3) == Decimal("-12.345")


def test_timestamptz_is_iso_utc_with_fraction_only_when_present() -> None:
    codec = pg_codec(1184, -1)
    assert codec.name == "io.debezium.time.ZonedTimestamp"
    assert codec.from_text("2024-06-12 01:30:00+00") == "2024-06-12T01:30:00Z"
    assert codec.from_text("2024-06-12 08:30:00+07") == "2024-06-12T01:30:00Z"
    assert codec.from_text("2024-06-12 08:30:00.25+05:30") == "2024-06-12T03:00:00.25Z"
    assert codec.from_text("2024-06-12 01:30:00.123456+00") == "2024-06-12T01:30:00.123456Z"


def test_timestamp_date_time_interval_are_debezium_integers() -> None:
    assert pg_codec(1114, -1).from_text("2018-06-20 15:13:16.945104") == 1529507596945104
    assert pg_codec(1114, 3).from_text("2018-06-20 15:13:16.945") == 1529507596945
    assert pg_codec(1114, -1).from_text("infinity") == 9223372036825200000
    assert pg_codec(1082, -1).from_text("2024-06-12") == (date(2024, 6, 12) - date(1970, 1, 1)).days
    assert pg_codec(1083, -1).from_text("01:00:00.5") == 3_600_500_000
    assert pg_codec(1186, -1).from_text("1 day 02:00:00") == (86400 + 7200) * 1_000_000
    assert pg_codec(1266, -1).from_text("08:30:00+07") == "01:30:00Z"


def test_other_types() -> None:
    assert pg_codec(16, -1).from_text("t") is True
    assert pg_codec(20, -1).from_text("9007199254740993") == 9007199254740993
    assert pg_codec(3802, -1).from_text('{"a": 1}') == '{"a": 1}'
    assert pg_codec(17, -1).from_text("\\x00ff") == "AP8="
    assert pg_codec(25, -1).from_text("hồ sơ") == "hồ sơ"
    assert pg_codec(99999, -1).from_text("{1,2}") == "{1,2}"  # unknown types travel as text


def test_an_enum_is_debeziums_enum_with_its_labels_in_sort_order() -> None:
    codec = pg_codec(99999, -1, ["zns", "sms", "oa"])
    assert codec.from_text("sms") == "sms" and codec.zero() == ""
    assert codec.field_schema("channel", False) == {
        "type": "string", "optional": False, "name": "io.debezium.data.Enum", "version": 1,
        "parameters": {"allowed": "zns,sms,oa"}, "field": "channel"}
    reflected = sqlalchemy_codec(postgresql.ENUM("zns", "oa", name="channel"))  # polling
    assert reflected.field_schema("channel", True)["parameters"] == {"allowed": "zns,oa"}
    assert sqlalchemy_codec(sa.String(20)).name is None


def _tuple(*values: str | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "TOAST":
            out += b"u"
        else:
            raw = value.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def test_pgoutput_messages_decode() -> None:
    begin = po.decode(b"B" + struct.pack(">qqi", 100, 0, 42))
    assert begin == po.Begin(100, po.PG_EPOCH_OFFSET_US, 42)
    rel = po.decode(b"R" + struct.pack(">I", 7) + b"public\0t\0d" + struct.pack(">h", 2)
                    + b"\x01id\0" + struct.pack(">Ii", 20, -1) + b"\x00note\0" + struct.pack(">Ii", 25, -1))
    assert rel == po.Relation(7, "public", "t", "d", (po.RelationColumn("id", 20, -1, True),
                                                      po.RelationColumn("note", 25, -1, False)))
    ins = po.decode(b"I" + struct.pack(">I", 7) + b"N" + _tuple("1", None))
    assert ins == po.Insert(7, ["1", None])
    upd = po.decode(b"U" + struct.pack(">I", 7) + b"K" + _tuple("1", None) + b"N" + _tuple("2", "TOAST"))
    assert upd == po.Update(7, ["1", None], True, ["2", po.UNCHANGED_TOAST])
    dele = po.decode(b"D" + struct.pack(">I", 7) + b"O" + _tuple("1", "x"))
    assert dele == po.Delete(7, ["1", "x"], False)
    msg = po.decode(b"M\x01" + struct.pack(">q", 9) + b"onestop\0" + struct.pack(">i", 2) + b"hi")
    assert msg == po.Message(True, 9, "onestop", b"hi")
    trunc = po.decode(b"T" + struct.pack(">ib", 2, 1) + struct.pack(">II", 7, 8))
    assert trunc == po.Truncate((7, 8), True, False)
    commit = po.decode(b"C\x00" + struct.pack(">qqq", 90, 120, 0))
    assert commit == po.Commit(90, 120, po.PG_EPOCH_OFFSET_US)
    assert po.lsn_to_int(po.int_to_lsn(0x16B374D848)) == 0x16B374D848


def test_row_reader_converts_and_keeps_nulls_toast_and_rejected_values() -> None:
    read = po.row_reader([("id", int, TOAST_PLACEHOLDER), ("note", None, TOAST_PLACEHOLDER),
                          ("fee", float, TOAST_PLACEHOLDER)])
    bad: list[str] = []
    assert read(_tuple("1", None, "TOAST"), 0, bad) == ({"id": 1, "note": None, "fee": TOAST_PLACEHOLDER}, 10)
    row, _ = read(_tuple("x", "hồ sơ", "1.5"), 0, bad)
    assert row == {"id": "x", "note": "hồ sơ", "fee": 1.5} and bad == ["id"]  # rejected: kept as text
    with pytest.raises(po.ProtocolError, match="2 columns, relation has 3"):
        read(_tuple("1", "2"), 0, bad)
    with pytest.raises(po.ProtocolError, match="binary mode"):
        read(struct.pack(">h", 3) + b"b", 0, bad)


def test_decode_change_reads_old_and_new_tuples() -> None:
    read = po.row_reader([("id", int, TOAST_PLACEHOLDER), ("note", None, TOAST_PLACEHOLDER)])
    head = struct.pack(">I", 7)
    upd = po.decode_change(b"U" + head + b"K" + _tuple("1", None) + b"N" + _tuple("2", "TOAST"), read, [])
    assert (upd.op, upd.old, upd.old_is_key_only, upd.new) == ("u", {"id": 1, "note": None}, True,
                                                               {"id": 2, "note": TOAST_PLACEHOLDER})
    dele = po.decode_change(b"D" + head + b"O" + _tuple("3", "x"), read, [])
    assert (dele.op, dele.old, dele.old_is_key_only, dele.new) == ("d", {"id": 3, "note": "x"}, False, None)
    ins = po.decode_change(b"I" + head + b"N" + _tuple("4", "y"), read, [])
    assert (ins.op, ins.old, ins.new) == ("c", None, {"id": 4, "note": "y"})


@pytest.mark.parametrize("schemas", [False, True])
@pytest.mark.parametrize("commit_lsn", [24023119, None])
def test_transaction_events_are_the_envelope_with_the_lsn_spliced_in(
        schemas: bool, commit_lsn: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time_ns", lambda: 1_718_155_800_123_456_789)
    # %, quotes: names that would break a %-format or JSON if spliced in unescaped.
    columns = (*_table().columns, Column("share%d", pg_codec(25, -1)))
    table = TableSchema('odd%s"prefix', "public", 'dossiers%d"x', columns, ("id",))
    events = TransactionEvents('odd%s"prefix', "d%b", table, 1_718_155_800_000_000, 555, commit_lsn, schemas)
    before, after = {"id": 1, "note": "100%"}, {"id": 1, "note": None, "fee_amount": "AA==", "share%d": "%s"}
    for op, old, new in (("c", None, after), ("u", before, after), ("d", before, None)):
        source = pg_source('odd%s"prefix', "d%b", table, 1_718_155_800_000_000, "false", 555, 24023128,
                           commit_lsn)
        assert events.event(old, new, op, 24023128) == envelope_bytes(table, old, new, source, op, schemas)


def _table() -> TableSchema:
    return TableSchema("onestop", "public", "dossiers",
                       (Column("id", pg_codec(20, -1), False), Column("note", pg_codec(25, -1)),
                        Column("fee_amount", pg_codec(1700, NUMERIC_14_2))), ("id",))


def test_envelope_has_debeziums_fields_in_debeziums_order() -> None:
    sample = json.loads((FIXTURES / "pg-create-value-no-schema.json").read_text())
    table = _table()
    source = pg_source("onestop", "onestop", table, 1_718_155_800_000_000, "false", 555, 24023128, 24023119)
    value = json.loads(envelope_bytes(table, None, {"id": 1, "note": TOAST_PLACEHOLDER, "fee_amount": "AA=="},
                                      source, "c", False))
    assert list(value) == list(sample)
    assert list(value["source"]) == list(sample["source"])
    assert value["source"]["snapshot"] == "false" and value["source"]["lsn"] == 24023128
    assert json.loads(value["source"]["sequence"]) == ["24023119", "24023128"]
    event = present(decode_value(value))
    assert event.op == "c" and event.source.connector == "postgresql"


def test_schema_envelope_names_and_semantic_types() -> None:
    table = _table()
    source = pg_source("onestop", "db", table, 0, "false", 1, 2, 3)
    doc = json.loads(envelope_bytes(table, None, {"id": 1, "note": None, "fee_amount": "AOTh8g=="},
                                    source, "c", True))
    schema = doc["schema"]
    assert schema["name"] == "onestop.public.dossiers.Envelope"
    after = next(f for f in schema["fields"] if f["field"] == "after")
    assert after["name"] == "onestop.public.dossiers.Value"
    fee = next(f for f in after["fields"] if f["field"] == "fee_amount")
    assert fee["name"] == "org.apache.kafka.connect.data.Decimal" and fee["parameters"]["scale"] == "2"
    after = present(decode_value(doc)).after
    assert after is not None and after["fee_amount"] == Decimal("150000.50")
    key = json.loads(present(table.key_bytes({"id": 1}, True)))
    assert key["schema"]["name"] == "onestop.public.dossiers.Key"
    assert key["schema"]["fields"] == [{"type": "int64", "optional": False, "field": "id"}]
    assert key["payload"] == {"id": 1}


@pytest.mark.parametrize("text, schema, name, statement", [
    ("public.dossiers", "public", "dossiers", "public.dossiers"),
    ("dossiers", "public", "dossiers", "public.dossiers"),
    ("public.HoSo", "public", "HoSo", 'public."HoSo"'),  # as stored
    ('public."HoSo"', "public", "HoSo", 'public."HoSo"'),  # as SQL writes it
    ('"Hồ sơ"."a.b"', "Hồ sơ", "a.b", '"Hồ sơ"."a.b"'),
    ('hs."say ""hi"""', "hs", 'say "hi"', 'hs."say ""hi"""'),
])
def test_table_names_are_read_as_stored_or_quoted_and_quoted_for_statements(
        text: str, schema: str, name: str, statement: str) -> None:
    ref = TableRef.parse(text)
    assert (ref.schema, ref.name, ref.sql_text()) == (schema, name, statement)


@pytest.mark.parametrize("text", ["", "a.b.c", "public.", ".x", 'a."b', 'a."b"c'])
def test_a_table_name_that_is_not_one_names_its_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"source.heartbeat_table: .* is not a table name"):
        TableRef.parse(text, "source.heartbeat_table")
