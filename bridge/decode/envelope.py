"""Debezium envelope → ChangeEvent, with or without the JsonConverter schema wrapper."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from bridge.decode.types import TOAST_PLACEHOLDER, TOAST_PLACEHOLDER_BYTES, decode_field
from bridge.errors import BadInputError
from bridge.model import ChangeEvent, SourceInfo

OPS = frozenset("cudrtm")
_NO_SCHEMAS: dict[str, dict[str, Any]] = {}  # schemaless JSON: values pass through
_SNAPSHOT_TRUE = {"true", "first", "first_in_data_collection", "last_in_data_collection", "last",
                  "incremental"}


def parse_json(value: bytes | str | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"not JSON: {exc}") from None


def decode_value(document: Any) -> ChangeEvent | None:
    """Decode one parsed record value.

    Returns None for records that are valid but carry no row change: tombstones
    (``null``), heartbeats (``{"ts_ms": …}``) and transaction BEGIN/END markers.
    Raises BadInputError for anything that is not a Debezium change event.
    """
    if document.__class__ is not dict and not isinstance(document, dict):
        if document is None:
            return None
        raise BadInputError(f"not a change event: expected a JSON object, got {type(document).__name__}")
    schemas = _NO_SCHEMAS
    if "payload" in document and "schema" in document:
        schemas, document = _row_field_schemas(document["schema"]), document["payload"]
        if document is None:
            return None
        if not isinstance(document, dict):
            raise BadInputError("not a change event: payload is not an object")
    if "op" not in document and _is_control_record(document):
        return None
    op = document.get("op")
    if op not in OPS:
        raise BadInputError(f"not a change event: op {op!r} is not one of c/u/d/r/t/m")
    source = document.get("source")
    if source.__class__ is not dict and not isinstance(source, dict):
        raise BadInputError("not a change event: missing source block")
    before, after = document.get("before"), document.get("after")
    if before is not None:
        before = _decode_row(before, schemas, "before")
    if after is not None:
        after = _decode_row(after, schemas, "after")
    _check_rows(op, before, after)
    ts_ms = document.get("ts_ms")
    return ChangeEvent(op, before, after, _source_info(source),  # positional: hot path
                       ts_ms if ts_ms.__class__ is int else _int_or_none(ts_ms))


def _is_control_record(document: dict[str, Any]) -> bool:
    heartbeat = document.keys() == {"ts_ms"}
    transaction_marker = document.get("status") in ("BEGIN", "END") and "id" in document
    return heartbeat or transaction_marker


def _row_field_schemas(schema: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(schema, dict):
        return _NO_SCHEMAS
    for envelope_field in schema.get("fields") or []:
        if envelope_field.get("field") in ("after", "before") and envelope_field.get("fields"):
            return {f["field"]: f for f in envelope_field["fields"] if "field" in f}
    return _NO_SCHEMAS


def _decode_row(row: Any, schemas: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    if row.__class__ is not dict and not isinstance(row, dict):
        raise BadInputError(f"not a change event: {name} is not an object")
    if not schemas:  # the common schemaless case: only placeholders and structs need work
        values = row.values()
        if (TOAST_PLACEHOLDER not in values and TOAST_PLACEHOLDER_BYTES not in values
                and dict not in map(type, values)):
            return row
        return {column: decode_field(value, None) for column, value in row.items()}
    return {column: decode_field(value, schemas.get(column)) for column, value in row.items()}


def _check_rows(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    if op in ("c", "u", "r") and after is None:
        raise BadInputError(f"not a change event: op {op!r} without an after row")
    if op == "d" and before is None and after is None:
        raise BadInputError("not a change event: delete without a before row")


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _snapshot(value: Any) -> str:
    """`source.snapshot` is a string enum in code, a boolean in older docs: accept both."""
    if value is False or value == "false":
        return "false"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).lower() if value is not None else "false"
    return text if text in _SNAPSHOT_TRUE else "false"


def _position(source: dict[str, Any]) -> str | None:
    """Where the change sits in the source's log, per connector; None when unknown."""
    connector = source.get("connector")
    if connector == "postgresql" and source.get("lsn") is not None:
        return f"pg:{source.get('txId')}:{source['lsn']}:{source.get('sequence')}"
    if connector == "mysql" and source.get("file") is not None:
        return f"mysql:{source.get('gtid')}:{source['file']}:{source.get('pos')}:{source.get('row')}"
    if connector == "sqlserver" and source.get("change_lsn") is not None:
        return (f"sqlserver:{source.get('commit_lsn')}:{source['change_lsn']}:"
                f"{source.get('event_serial_no')}")
    if source.get("lsn") is not None:
        return f"{connector}:{source.get('txId')}:{source['lsn']}"
    return None


def _source_info(source: dict[str, Any]) -> SourceInfo:
    ts_ms = source.get("ts_ms")
    get = source.get
    return SourceInfo(  # connector, db, schema, table, ts_ms, snapshot, position
        _str(get("connector")), _str(get("db")), _str(get("schema")), _str(get("table")),
        ts_ms if ts_ms.__class__ is int else _int_or_none(ts_ms),
        _snapshot(get("snapshot")), _position(source))


def _str(value: Any) -> str:
    return value if value.__class__ is str else ("" if value is None else str(value))


def event_id(event: ChangeEvent, row_key: str) -> str:
    """Stable for the same change event (redelivery, connector restart), distinct otherwise.

    Uses the source log position when the connector gives one; rows that share a
    position (multi-row inserts share one LSN) differ by their key. Without a
    position (polling connectors), the row content and commit time stand in.
    """
    src = event.source
    where = src.position or f"content:{src.ts_ms}:{_canonical(event.after or event.before)}"
    material = "|".join((src.connector, src.db, src.schema, src.table, where, row_key, event.op))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _canonical(row: dict[str, Any] | None) -> str:
    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)
