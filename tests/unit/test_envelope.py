"""Decoding every real Debezium sample, and the envelope rules around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.decode.envelope import decode_value, event_id, parse_json
from bridge.errors import BadInputError
from events import present

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "debezium"


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name, op, connector", [
    ("pg-create-value-no-schema.json", "c", "postgresql"),
    ("pg-create-value-with-schema.json", "c", "postgresql"),
    ("pg-update-value-no-schema.json", "u", "postgresql"),
    ("pg-delete-value-no-schema.json", "d", "postgresql"),
    ("pg-truncate-value-no-schema.json", "t", "postgresql"),
    ("pg-message-transactional-value-no-schema.json", "m", "postgresql"),
    ("pg-create-with-transaction-block-no-schema.json", "c", ""),
    ("mysql-create-value-no-schema.json", "c", "mysql"),
    ("mysql-create-value-with-schema.json", "c", "mysql"),
    ("mysql-update-value-no-schema.json", "u", "mysql"),
    ("sqlserver-create-value-with-schema.json", "c", "sqlserver"),
    ("sqlserver-update-value-no-schema.json", "u", "sqlserver"),
])
def test_every_value_sample_decodes(name: str, op: str, connector: str) -> None:
    event = decode_value(load(name))
    assert event is not None
    assert event.op == op
    assert event.source.connector == connector


def test_pg_source_block_gives_a_log_position_and_commit_time() -> None:
    event = present(decode_value(load("pg-update-value-no-schema.json")))
    assert event.source.position == "pg:556:24023128:None"
    assert event.source.ts_ms == 1559033904863
    assert event.source.snapshot == "false"  # boolean false in the docs' sample
    assert event.before == {"id": 1}  # REPLICA IDENTITY DEFAULT: key only


def test_mysql_and_sqlserver_positions_come_from_their_own_fields() -> None:
    mysql = present(decode_value(load("mysql-create-value-no-schema.json")))
    assert mysql.source.position == "mysql:None:mysql-bin.000003:154:0"
    sqlserver = present(decode_value(load("sqlserver-update-value-no-schema.json")))
    assert str(sqlserver.source.position).startswith("sqlserver:00000027:00000ac0:0007")


@pytest.mark.parametrize("name", ["pg-transaction-begin.json", "pg-transaction-end.json"])
def test_transaction_markers_are_valid_but_carry_no_change(name: str) -> None:
    assert decode_value(load(name)) is None


def test_tombstones_and_heartbeats_yield_nothing() -> None:
    assert decode_value(None) is None
    assert decode_value({"schema": {"type": "struct"}, "payload": None}) is None
    assert decode_value({"ts_ms": 1700000000000}) is None


def test_a_key_is_not_a_change_event() -> None:
    with pytest.raises(BadInputError, match="not a change event"):
        decode_value(load("pg-key-with-schema.json"))


@pytest.mark.parametrize("document, message", [
    ([1, 2], "expected a JSON object"),
    ({"op": "x", "source": {}}, "op 'x'"),
    ({"op": "c", "after": {"id": 1}}, "missing source"),
    ({"op": "c", "source": {}, "after": None}, "without an after row"),
    ({"op": "d", "source": {}}, "delete without a before row"),
    ({"op": "u", "source": {}, "after": "row"}, "after is not an object"),
    ({"schema": {}, "payload": 3}, "payload is not an object"),
])
def test_malformed_documents_are_bad_input(document: object, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        decode_value(document)


def test_not_json_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="not JSON"):
        parse_json(b"{oops")
    with pytest.raises(BadInputError, match="not JSON"):
        parse_json(b"\xff\xfe")


def test_event_id_is_stable_and_distinguishes_rows_sharing_one_lsn() -> None:
    event = present(decode_value(load("pg-create-value-no-schema.json")))
    assert event_id(event, "1") == event_id(present(decode_value(load("pg-create-value-no-schema.json"))), "1")
    assert event_id(event, "1") != event_id(event, "2")


def test_event_id_without_a_log_position_uses_content_and_commit_time() -> None:
    base = {"op": "u", "source": {"connector": "polling", "ts_ms": 1}, "after": {"id": 1, "status": 2}}
    other_status = {**base, "after": {"id": 1, "status": 5}}
    later = {**base, "source": {"connector": "polling", "ts_ms": 2}}
    ids = {event_id(present(decode_value(d)), "1") for d in (base, other_status, later)}
    assert len(ids) == 3
    assert event_id(present(decode_value(base)), "1") == event_id(present(decode_value(dict(base))), "1")
