"""The native event path (connectors/_rowjson.c) writes the bytes the Python path writes.

Streaming sends inserts and old-tuple-less updates through `rowjson`; every other change,
and every row the native pass declines, goes through `pgoutput.decode_change` and
`TransactionEvents.event`. A difference between the two would be a silent change of the
records consumers read.
"""

from __future__ import annotations

import base64

import struct
import time
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge
from connectors import pgoutput as po
from bridge.settings import load_settings
from connectors.capture import SESSION_OPTIONS
from connectors.delivery import Delivery, producer_config
from connectors.envelope import Column, TableSchema, TransactionEvents
from connectors.rowjson import Encoder, row_encoder
from connectors.stream import _Rel
from connectors.types import TOAST_PLACEHOLDER, pg_codec

TOAST = object()  # a 'u' (unchanged TOAST) column in a generated tuple
NUMERIC = {(14, 2): ((14 << 16) | 2) + 4, (30, 4): ((30 << 16) | 4) + 4, (10, 0): ((10 << 16) | 0) + 4}

COLUMNS = (  # name, type oid, typmod: every native form, and a few that go through converters
    ("id", 20, -1), ("code", 25, -1), ("status", 21, -1), ("n32", 23, -1), ("ok", 16, -1),
    ("received_at", 1184, -1), ("fee", 1700, NUMERIC[14, 2]), ("big", 1700, NUMERIC[30, 4]),
    ("whole", 1700, NUMERIC[10, 0]), ("ratio", 701, -1), ("day", 1082, -1), ("doc", 3802, -1),
    ("odd \"name\"", 25, -1), ("scan", 17, -1),
)


def _row(**values: object) -> list[object]:
    """A tuple as wide as COLUMNS: the values given by column name, NULL elsewhere."""
    return [values.get(name) for name, _, _ in COLUMNS]


def _table(key: tuple[str, ...] = ("id",)) -> TableSchema:
    return TableSchema("onestop", "public", "t", tuple(Column(name, pg_codec(oid, mod))
                                                       for name, oid, mod in COLUMNS), key)


def _tuple(values: list[object]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is TOAST:
            out += b"u"
        else:
            raw = value if isinstance(value, bytes) else str(value).encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def _insert(values: list[object]) -> bytes:
    return b"I" + struct.pack(">I", 7) + b"N" + _tuple(values)


NOW_NS, LSN = 1_718_155_800_123_456_789, 24023128


def _events(table: TableSchema, schemas: bool, commit_lsn: int | None = 24023119) -> TransactionEvents:
    # %, quotes: a prefix that would break the %-format or the JSON if spliced in unescaped.
    return TransactionEvents('odd%s"prefix', "d%b", table, 1_718_155_800_000_000, 555, commit_lsn, schemas)


def _python_path(table: TableSchema, payload: bytes, schemas: bool = False,
                 commit_lsn: int | None = 24023119, now: int = NOW_NS,
                 lsn: int = LSN) -> tuple[bytes, bytes | None]:
    change = po.decode_change(payload, _Rel(table).read, [])
    assert change.new is not None
    with patch("time.time_ns", return_value=now):
        event = _events(table, schemas, commit_lsn).event(None, change.new, change.op, lsn)
    return event, table.key_for(change.new, schemas)


def _native_path(table: TableSchema, payload: bytes, schemas: bool = False,
                 commit_lsn: int | None = 24023119, now: int = NOW_NS,
                 lsn: int = LSN) -> tuple[bytes, bytes | None] | None:
    encoder = row_encoder(table, schemas, clock=lambda: now)
    assert encoder is not None, "the native event path is built with the compiled hot path"
    return encoder.encode(payload, _events(table, schemas, commit_lsn).frame, lsn)


def _after(event: bytes) -> dict[str, object]:
    return orjson.loads(event)["after"]  # type: ignore[no-any-return]


pytestmark = pytest.mark.skipif(not bridge.compiled(), reason="pure-Python install: no native event path")


def _pg_timestamptz(moment: datetime, offset_minutes: int) -> str:
    """As PostgreSQL prints a timestamptz in a session at that UTC offset."""
    local = moment + timedelta(minutes=offset_minutes)
    text = f"{local.year:04d}-{local:%m-%d %H:%M:%S}"
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    hours, minutes = divmod(abs(offset_minutes), 60)
    sign = "-" if offset_minutes < 0 else "+"
    return text + f"{sign}{hours:02d}" + (f":{minutes:02d}" if minutes else "")


def _maybe(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), st.just(TOAST), values)


moments = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30))
ROW = st.tuples(
    st.integers(-2**63, 2**63 - 1).map(str),
    _maybe(st.text()),
    _maybe(st.integers(-2**15, 2**15 - 1).map(str)),
    _maybe(st.integers(-2**31, 2**31 - 1).map(str)),
    _maybe(st.sampled_from(["t", "f"])),
    _maybe(st.one_of(st.builds(_pg_timestamptz, moments, st.just(0)),
                     st.builds(_pg_timestamptz, moments, st.sampled_from([420, -300, 330])),
                     st.sampled_from(["infinity", "-infinity"]))),
    _maybe(st.decimals(-10**12 + 1, 10**12 - 1, places=2).map(lambda d: f"{d:.2f}")),
    _maybe(st.one_of(st.decimals(-10**26 + 1, 10**26 - 1, places=4).map(lambda d: f"{d:.4f}"),
                     st.just("NaN"))),
    _maybe(st.integers(-10**10 + 1, 10**10 - 1).map(str)),
    _maybe(st.floats(allow_nan=False, allow_infinity=False).map(repr)),
    _maybe(st.dates().map(lambda d: d.isoformat())),
    _maybe(st.dictionaries(st.text(max_size=5), st.integers(-2**53, 2**53))
           .map(lambda d: orjson.dumps(d).decode())),
    _maybe(st.text(alphabet=st.characters(max_codepoint=0x7f))),
    _maybe(st.binary(max_size=8).map(lambda raw: "\\x" + raw.hex())),
)


@settings(max_examples=400, deadline=None)
@given(ROW, st.booleans(), st.sampled_from([24023119, None]), st.sampled_from([b"I", b"U"]))
def test_native_events_and_keys_equal_the_python_paths(row: tuple[object, ...], schemas: bool,
                                                       commit_lsn: int | None, tag: bytes) -> None:
    table = _table()
    payload = tag + _insert(list(row))[1:]
    native = _native_path(table, payload, schemas, commit_lsn)
    assert native == _python_path(table, payload, schemas, commit_lsn)
    assert native is not None and orjson.loads(native[0])  # and it is JSON


def test_escapes_and_characters_are_written_as_orjson_writes_them() -> None:
    table = _table()
    text = 'hồ sơ "số 1"\\ \x00\x01\x1f\x7f\b\f\n\r\t 😀 \u2028 /'
    payload = _insert(["1", text, "2", "3", "t", "2024-06-12 01:30:00.5+00", "150000.50",
                       "-12345678901234567890.1234", "0", "1e+300", "2024-06-12", "{}", "x", "\\x00ff"])
    native = _native_path(table, payload)
    assert native == _python_path(table, payload)
    assert native is not None and _after(native[0])["code"] == text


@pytest.mark.parametrize("special", ['"', "\\", "\x00", "\x1f", "\x7f", "ồ", "😀"])
def test_a_character_to_escape_or_check_is_found_at_every_place_of_an_ascii_run(special: str) -> None:
    """Plain ASCII is copied eight bytes at a time: a quote, a control character or a
    multi-byte character must be noticed wherever it falls in or after such a word."""
    table = _table()
    for place in range(18):
        text = "a" * place + special + "b" * (17 - place)
        payload = _insert(["1", text] + [None] * 12)
        native = _native_path(table, payload)
        assert native == _python_path(table, payload), (place, text)
        assert native is not None and _after(native[0])["code"] == text


@pytest.mark.parametrize("now", [0, 999, 999_999, 1_000_000, 1_000_001, NOW_NS])
def test_ts_ms_ts_us_and_ts_ns_agree_for_any_clock(now: int) -> None:
    """ts_ms and ts_us are ts_ns truncated, whatever the clock reads."""
    table = _table()
    payload = _insert(["1", "x"] + [None] * 12)
    native = _native_path(table, payload, now=now)
    assert native == _python_path(table, payload, now=now)
    assert native is not None
    event = orjson.loads(native[0])
    assert (event["ts_ms"], event["ts_us"], event["ts_ns"]) == (now // 10**6, now // 1000, now)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
@settings(max_examples=300, deadline=None)
def test_clock_readings_and_lsns_of_any_length_are_written_as_python_writes_them(now: int, lsn: int) -> None:
    """The encoder writes numbers two digits at a time: odd and even lengths, zeros inside."""
    table = _table()
    payload = _insert(["1", "x"] + [None] * 12)
    for clock, position in ((now, lsn), (now // 10 ** (now % 19), lsn // 10 ** (lsn % 19))):
        native = _native_path(table, payload, now=clock, lsn=position)
        assert native == _python_path(table, payload, now=clock, lsn=position)


def test_invalid_utf8_after_an_ascii_run_is_declined() -> None:
    table = _table()
    for place in range(18):
        payload = _insert(["1", b"a" * place + b"\xff" + b"b" * 8] + [None] * 12)
        assert _native_path(table, payload) is None, place


@pytest.mark.parametrize("fee, expected", [
    ("0.00", "AA=="), ("1.27", "fw=="), ("1.28", "AIA="), ("-1.28", "gA=="), ("-1.29", "/38="),
    ("150000.50", "AOTh8g=="), ("9999999999999999.99", "DeC2s6dj//8="), ("-0.01", "/w=="),
])
def test_decimals_are_minimal_twos_complement_in_base64(fee: str, expected: str) -> None:
    table = _table()
    payload = _insert(_row(id="1", fee=fee))
    native = _native_path(table, payload)
    assert native is not None and _after(native[0])["fee"] == expected
    assert native == _python_path(table, payload)


@pytest.mark.parametrize("case, payload", [
    ("not UTF-8", _insert(_row(id="1", code=b"\xc3\x28"))),
    ("a surrogate", _insert(_row(id="1", code=b"\xed\xa0\x80"))),
    ("a value its converter rejects", _insert(_row(id="1", status="x"))),
    ("fewer columns than the relation", _insert(["1", "a"])),
    ("a truncated tuple", _insert(_row(id="1", code="a", whole="7"))[:-1]),
    ("a binary column", b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 13) + b"b"),
])
def test_rows_the_native_pass_declines_go_to_the_python_path(case: str, payload: bytes) -> None:
    assert _native_path(_table(), payload) is None, case


def test_tables_without_a_key_and_with_a_composite_key() -> None:
    payload = _insert(_row(id="1", code="a"))
    keyless = _table(key=())
    assert _native_path(keyless, payload) == _python_path(keyless, payload)
    assert _native_path(keyless, payload)[1] is None  # type: ignore[index]
    assert row_encoder(_table(key=("id", "code")), False) is None  # composite: Python path


def test_updates_keep_the_same_bytes_too() -> None:
    table = _table()
    values = ["5", "b", "1", "2", "f", "2024-06-12 08:30:00+07", "-3.10", None, "7", "0.5", "2024-01-31",
              "[]", TOAST, TOAST]
    payload = b"U" + struct.pack(">I", 7) + b"N" + _tuple(values)
    assert _native_path(table, payload) == _python_path(table, payload)
    parsed = _after(_native_path(table, payload)[0])  # type: ignore[index]
    assert parsed["received_at"] == "2024-06-12T01:30:00Z" and parsed['odd "name"'] == TOAST_PLACEHOLDER
    # A binary column's placeholder is the placeholder's bytes (Debezium's, base64 under JSON).
    assert base64.b64decode(str(parsed["scan"]), validate=True) == TOAST_PLACEHOLDER.encode()


KINDS = """
CREATE TYPE mood AS ENUM ('vui', 'buồn');
CREATE TABLE kinds (
  id bigint PRIMARY KEY, t text, vc varchar(10), ch char(3), i2 smallint, i4 integer, b boolean,
  tstz timestamptz, ts timestamp, ts3 timestamp(3), d date, tm time, tmtz timetz, iv interval,
  n numeric(14,2), n0 numeric(10,0), nbig numeric(30,4), nv numeric, f4 real, f8 double precision,
  m money, j json, jb jsonb, u uuid, x xml, by bytea, arr integer[], e mood, ip inet);
"""
KIND_ROWS = [
    "(1, 'hồ sơ \"số 1\" \\\\ /', 'abc', 'x', 1, -2, true, '2024-06-12 08:30:00.5+07', "
    "'2024-06-12 08:30:00.123456', '2024-06-12 08:30:00.123', '2024-06-12', '08:30:00.25', '08:30:00+07', "
    "'1 year 2 mons 3 days 04:05:06.5', 150000.50, 42, 12345678901234567890123456.1234, 3.14159, 1.5, "
    "0.1, 12.34, '{\"a\": [1, 2]}', '{\"b\": null}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '<a>x</a>', "
    "'\\x00ff', '{1,2,3}', 'buồn', '10.0.0.1/8')",
    "(2, E'tab\\there\\nline\\u0001 😀', '', '', -32768, 2147483647, false, 'infinity', '-infinity', "
    "NULL, 'infinity', '24:00:00', '23:59:59.999999-05:30', '-1 days -00:00:01', -0.01, -1, "
    "-99999999999999999999999999.9999, 'NaN', 'Infinity', '-Infinity', -1.5, 'null', '[]', NULL, "
    "NULL, '', '{}', 'vui', '::1')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, '1999-12-31 23:59:59+00', NULL, NULL, '0099-01-01 BC', NULL, "
    "NULL, NULL, 999999999999.99, 0, 0, -0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL)",
]


@pytest.mark.services
def test_every_type_as_the_server_prints_it_gives_the_same_events(capture_db: Any) -> None:
    """Real pgoutput payloads (the connector's session settings, every common type and edge
    values): the native pass takes every row and writes what the Python path writes."""
    conn = capture_db.pg.connect(capture_db.name, options=SESSION_OPTIONS)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(KINDS)
        cur.execute("CREATE PUBLICATION kinds_pub FOR TABLE kinds")
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (capture_db.name,))
        cur.execute(f"INSERT INTO kinds VALUES {', '.join(KIND_ROWS)}")
        cur.execute("UPDATE kinds SET t = 'đã sửa', n = n + 1 WHERE id = 1")
        cur.execute("SELECT data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, "
                    "'proto_version', '1', 'publication_names', 'kinds_pub')", (capture_db.name,))
        payloads = [bytes(row[0]) for row in cur.fetchall()]
    conn.close()
    relation = next(po.decode(p) for p in payloads if p[:1] == b"R")
    assert isinstance(relation, po.Relation)
    table = TableSchema("onestop", "public", "kinds", tuple(Column(c.name, pg_codec(c.type_oid, c.typmod))
                                                            for c in relation.columns), ("id",))
    changes = [p for p in payloads if p[:1] in (b"I", b"U")]
    assert len(changes) == 4
    for schemas in (False, True):
        for payload in changes:
            native = _native_path(table, payload, schemas)
            assert native is not None, payload
            assert native == _python_path(table, payload, schemas)


@settings(max_examples=300, deadline=None)
@given(ROW, st.data())
def test_a_damaged_payload_is_declined_or_read_as_the_python_path_reads_it(row: tuple[object, ...],
                                                                         data: st.DataObject) -> None:
    """Bytes cut off or overwritten anywhere (a length, a column kind, inside a value): the
    native pass never reads past the payload, and what it does accept, Python reads alike."""
    table = _table()
    payload = bytearray(_insert(list(row)) + b"x" * data.draw(st.integers(0, 8)))
    for _ in range(data.draw(st.integers(1, 3))):
        payload[data.draw(st.integers(6, len(payload) - 1))] = data.draw(st.integers(0, 255))
    damaged = bytes(payload[:data.draw(st.integers(6, len(payload)))])
    native = _native_path(table, damaged)
    if native is not None:
        assert native == _python_path(table, damaged)


def test_a_row_larger_than_the_native_buffer_is_written_whole() -> None:
    text = 'đ"\\\n' * 50_000  # 350 kB of text, most of it escaped
    payload = _insert(_row(id="1", code=text))
    native = _native_path(_table(), payload)
    assert native is not None and _after(native[0])["code"] == text
    assert native == _python_path(_table(), payload)


class _Producer:
    """Keeps what was produced; raises BufferError (librdkafka's full queue) `full` times."""

    def __init__(self, full: int = 0) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.full = full
        self.polls = 0

    def produce(self, *record: Any, headers: Any = None) -> None:
        assert headers is None
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.records.append(record)

    def poll(self, _timeout: float = 0) -> int:
        self.polls += 1
        return 0


def _delivery(producer: _Producer) -> Delivery:
    kafka = load_settings(None, kafka={"bootstrap_servers": "127.0.0.1:1"}).kafka
    delivery = Delivery(producer_config(kafka))
    delivery.producer = producer  # type: ignore[assignment]
    return delivery


@pytest.mark.parametrize("full", [0, 3])
def test_a_row_is_produced_as_encoded_even_when_the_queue_is_full(full: int) -> None:
    """send_row hands the encoder's record to the producer; on a full queue it serves
    callbacks until there is room and then sends the same record."""
    table = _table()
    encoder = row_encoder(table, False, clock=lambda: NOW_NS)
    assert encoder is not None
    producer = _Producer(full)
    delivery = _delivery(producer)
    waits: list[int] = []
    delivery.on_wait = lambda: waits.append(1)
    batch, frame = delivery.open(), _events(table, False).frame
    payload = _insert(_row(id="7", code="hồ sơ 7"))
    assert delivery.send_row(batch, table, encoder, payload, frame, LSN, "c")
    event, key = encoder.encode(payload, frame, LSN)  # type: ignore[misc]
    assert producer.records == [(table.topic, event, key, -1, batch.callback)]
    assert (batch.pending, batch.sent, batch.counts()) == (1, 1, {(table.full_name, "c"): 1})
    assert len(waits) == full and producer.polls >= full


def test_a_row_the_native_pass_declines_is_left_to_the_python_path_unsent() -> None:
    table = _table()
    encoder = row_encoder(table, False)
    assert encoder is not None
    producer = _Producer()
    delivery = _delivery(producer)
    batch = delivery.open()
    payload = _insert(_row(id="1", code=b"\xc3\x28"))  # not UTF-8
    assert not delivery.send_row(batch, table, encoder, payload, _events(table, False).frame, LSN, "c")
    assert producer.records == [] and (batch.pending, batch.sent, batch.counts()) == (0, 0, {})


def test_without_a_clock_given_events_carry_the_systems_time() -> None:
    table = _table()
    encoder = row_encoder(table, False)
    assert encoder is not None
    before = time.time_ns()
    encoded = encoder.encode(_insert(_row(id="1")), _events(table, False).frame, LSN)
    after = time.time_ns()
    assert encoded is not None
    assert before <= orjson.loads(encoded[0])["ts_ns"] <= after


@pytest.mark.parametrize("columns, key, error", [
    (((b'"id":', 1, 0, None),), None, TypeError),  # a column without its TOAST value
    (((b'"id":', "1", 0, None, b'"x"'),), None, TypeError),  # a form that is not an int
    (((b'"id":', 1, 0, None, "x"),), None, TypeError),  # a TOAST value that is not bytes
    (((b'"id":', 1, 0, None, b'"x"'),), (1, b"{", b"}"), ValueError),  # the key past the last column
    (((b'"id":', 1, 0, None, b'"x"'),), (0, b"{", "}"), TypeError),  # the key's tail not bytes
])
def test_an_encoder_is_refused_when_made_from_malformed_parts(columns: Any, key: Any,
                                                               error: type[Exception]) -> None:
    """What the C path relies on per row is checked once, when the encoder is made."""
    with pytest.raises(error):
        Encoder(columns, key, orjson.dumps)
