"""Kafka records in Debezium's shape: topic, key ``{pk…}``, value = change-event envelope.

With ``schemas_enable`` both key and value are wrapped as JsonConverter writes them
(``{"schema": …, "payload": …}``); the schema JSON is built once per table version and
spliced in as text, so the hot path serialises only the payload. Streaming goes further:
the ``source`` block is serialised once per table and transaction (`TransactionEvents`)
and only the rows, the op, the change's LSN and the time are formatted per change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.types import Codec

CONNECTOR_VERSION = "onestop-bridge-0.1.0"
SNAPSHOT_ALLOWED = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"

_dumps = orjson.dumps  # compact UTF-8 bytes, like JsonConverter


def avro_name(text: str) -> str:
    """Debezium coerces schema names to Avro rules: invalid characters become '_'."""
    parts = [re.sub(r"[^A-Za-z0-9_]", "_", part) for part in text.split(".")]
    return ".".join(p if p and not p[0].isdigit() else f"_{p}" for p in parts)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    codec: Codec
    optional: bool = True


@dataclass(slots=True)
class TableSchema:
    """One version of one table as the connector publishes it."""

    prefix: str
    schema: str
    table: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    source_struct: str = "io.debezium.connector.postgresql.Source"
    # Derived once: they are read for every record.
    topic: str = field(default="", init=False)
    full_name: str = field(default="", init=False)
    _key_head: bytes = field(default=b"", init=False)
    _value_schema: bytes | None = field(default=None, init=False)
    _key_schema: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.topic = f"{self.prefix}.{self.schema}.{self.table}"
        self.full_name = f"{self.schema}.{self.table}"
        names = [c.name for c in self.columns]
        missing = [k for k in self.key_columns if k not in names]
        if missing:
            raise ValueError(f"key columns {missing} not among the columns of {self.full_name}")
        if len(self.key_columns) == 1:
            self._key_head = b"{" + _dumps(self.key_columns[0]) + b":"

    def key_of(self, row: dict[str, Any]) -> dict[str, Any] | None:
        if not self.key_columns:
            return None
        return {k: row.get(k) for k in self.key_columns}

    def key_for(self, row: dict[str, Any], schemas: bool) -> bytes | None:
        """The record key of a row (hot path: one key column)."""
        if self._key_head:
            return self.key_json(_dumps(row.get(self.key_columns[0])), schemas)
        return self.key_bytes(self.key_of(row), schemas)

    def key_json(self, value: bytes | None, schemas: bool) -> bytes | None:
        """The record key from the JSON value of its one column (None: the table has no key)."""
        if value is None:
            return None
        return self._wrap_key(self._key_head + value + b"}", schemas)

    def key_bytes(self, key: dict[str, Any] | None, schemas: bool) -> bytes | None:
        if key is None:
            return None
        return self._wrap_key(_dumps(key), schemas)

    def _wrap_key(self, payload: bytes, schemas: bool) -> bytes:
        if not schemas:
            return payload
        if self._key_schema is None:
            fields = [c.codec.field_schema(c.name, False) for c in self.columns
                      if c.name in self.key_columns]
            self._key_schema = _dumps({"type": "struct", "fields": fields, "optional": False,
                                       "name": avro_name(f"{self.topic}.Key")})
        return _with_schema(self._key_schema, payload)

    def value_schema(self) -> bytes:
        if self._value_schema is None:
            row_name = avro_name(f"{self.topic}.Value")
            row_fields = [c.codec.field_schema(c.name, c.optional) for c in self.columns]
            envelope = {
                "type": "struct",
                "fields": [
                    {"type": "struct", "fields": row_fields, "optional": True, "name": row_name,
                     "field": "before"},
                    {"type": "struct", "fields": row_fields, "optional": True, "name": row_name,
                     "field": "after"},
                    source_schema(self.source_struct),
                    *_op_and_times(),
                ],
                "optional": False,
                "name": avro_name(f"{self.topic}.Envelope"),
                "version": 1,
            }
            self._value_schema = _dumps(envelope)
        return self._value_schema


def _field(kind: str, name: str, optional: bool = False) -> dict[str, Any]:
    return {"type": kind, "optional": optional, "field": name}


def _op_and_times() -> list[dict[str, Any]]:
    """The fields after `source` in a change event and in a message event (§1.2)."""
    return [_field("string", "op"), _field("int64", "ts_ms", True), _field("int64", "ts_us", True),
            _field("int64", "ts_ns", True)]


def source_schema(struct_name: str) -> dict[str, Any]:
    f = _field
    snapshot = {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
                "parameters": {"allowed": SNAPSHOT_ALLOWED}, "default": "false", "field": "snapshot"}
    fields = [f("string", "version"), f("string", "connector"), f("string", "name"),
              f("int64", "ts_ms"), f("int64", "ts_us", True), f("int64", "ts_ns", True), snapshot,
              f("string", "db"), f("string", "sequence", True), f("string", "schema"),
              f("string", "table")]
    if struct_name.endswith("postgresql.Source"):
        fields += [f("int64", "txId", True), f("int64", "lsn", True), f("int64", "xmin", True)]
    return {"type": "struct", "fields": fields, "optional": False, "name": struct_name,
            "field": "source"}


def pg_source(prefix: str, db: str, table: TableSchema, ts_us: int, snapshot: str,
              tx_id: int | None, lsn: int | None, commit_lsn: int | None) -> dict[str, Any]:
    """The PostgreSQL `source` block, field order as Debezium writes it.

    `sequence` is ``[commit LSN of this transaction, LSN of the change]``: unlike Debezium's
    "last committed LSN" it is the same on every replay, so consumers may dedupe by it.
    """
    sequence = None
    if lsn is not None:
        sequence = f'["{commit_lsn}","{lsn}"]' if commit_lsn is not None else f'[null,"{lsn}"]'
    return {"version": CONNECTOR_VERSION, "connector": "postgresql", "name": prefix,
            "ts_ms": ts_us // 1000, "ts_us": ts_us, "ts_ns": ts_us * 1000, "snapshot": snapshot,
            "db": db, "sequence": sequence, "schema": table.schema, "table": table.table,
            "txId": tx_id, "lsn": lsn, "xmin": None}


# The variable parts of a change event, in Debezium's field order: before, after, the
# change's LSN (in source.sequence and source.lsn), op, then ts_ms, ts_us and ts_ns
# (processing time). A frame is the literal text around them; its %-format puts them in.
_SPECS = (b"%b", b"%b", b"%d", b"%d", b"%b", b"%d", b"%d", b"%d", b"")
_OPS = {op: op.encode() for op in ("c", "u", "d")}


def _literal(text: bytes) -> bytes:
    """Bytes to embed in a %-format as they are."""
    return text.replace(b"%", b"%%")


# JsonConverter's wrapper with schemas enabled: {"schema": …, "payload": …}.
_SCHEMA, _PAYLOAD, _END = b'{"schema":', b',"payload":', b"}"


def _with_schema(schema: bytes, payload: bytes) -> bytes:
    return b"".join((_SCHEMA, schema, _PAYLOAD, payload, _END))


def envelope_bytes(table: TableSchema, before: dict[str, Any] | None, after: dict[str, Any] | None,
                   source: dict[str, Any], op: str, schemas: bool) -> bytes:
    """One event in one `_dumps` (snapshot, polling): cheaper than a template built per call."""
    now_ns = time.time_ns()
    payload = _dumps({"before": before, "after": after, "source": source, "op": op,
                      "ts_ms": now_ns // 1_000_000, "ts_us": now_ns // 1000, "ts_ns": now_ns})
    return _with_schema(table.value_schema(), payload) if schemas else payload


class TransactionEvents:
    """The change events of one table in one transaction, their envelope serialised once.

    Between the changes of a transaction only the rows, the op, the change's LSN (in
    ``source.sequence`` and ``source.lsn``) and the processing time differ: the source
    block (`pg_source`) and, with ``schemas_enable``, the schema are in the `frame`, the
    literal text between those parts, once. `rowjson` writes events into the frame natively.
    """

    __slots__ = ("frame", "_format")

    def __init__(self, prefix: str, db: str, table: TableSchema, ts_us: int, tx_id: int | None,
                 commit_lsn: int | None, schemas: bool) -> None:
        block = _dumps(pg_source(prefix, db, table, ts_us, "false", tx_id, None, commit_lsn))
        # Strings inside the block are JSON-escaped, so these unescaped keys occur only as keys.
        head, _, rest = block.partition(b'"sequence":null')
        middle, _, tail = rest.rpartition(b'"lsn":null')
        commit = b"null" if commit_lsn is None else b'\\"%d\\"' % commit_lsn
        first, last = (_SCHEMA + table.value_schema() + _PAYLOAD, _END) if schemas else (b"", b"")
        self.frame = (first + b'{"before":', b',"after":',
                      b',"source":' + head + b'"sequence":"[' + commit + b',\\"',
                      b'\\"]"' + middle + b'"lsn":', tail + b',"op":"', b'","ts_ms":', b',"ts_us":',
                      b',"ts_ns":', b"}" + last)
        self._format = b"".join(_literal(text) + spec for text, spec in zip(self.frame, _SPECS))

    def event(self, before: dict[str, Any] | None, after: dict[str, Any] | None, op: str,
              lsn: int) -> bytes:
        now_ns = time.time_ns()
        return self._format % (
            b"null" if before is None else _dumps(before), b"null" if after is None else _dumps(after),
            lsn, lsn, _OPS[op], now_ns // 1_000_000, now_ns // 1000, now_ns)


def heartbeat_record(prefix: str, schemas: bool) -> tuple[str, bytes, bytes]:
    """`__debezium-heartbeat.<prefix>`: key {serverName}, value {ts_ms} (debezium.md §1.7)."""
    key: dict[str, Any] = {"serverName": prefix}
    value: dict[str, Any] = {"ts_ms": time.time_ns() // 1_000_000}
    if schemas:
        key = {"schema": {"type": "struct", "fields": [_field("string", "serverName")],
                          "optional": False, "name": "io.debezium.connector.common.ServerNameKey"},
               "payload": key}
        value = {"schema": {"type": "struct", "fields": [_field("int64", "ts_ms")],
                            "optional": False, "name": "io.debezium.connector.common.Heartbeat"},
                 "payload": value}
    return f"__debezium-heartbeat.{prefix}", _dumps(key), _dumps(value)


def message_record(prefix: str, value: dict[str, Any], schemas: bool) -> tuple[str, bytes, bytes]:
    """`<prefix>.message`: a pg_logical_emit_message, key {prefix} (debezium.md §1.4), with
    Debezium's MessageKey/MessageValue schemas when schemas are on."""
    key: dict[str, Any] = {"prefix": value["message"]["prefix"]}
    if schemas:
        block = {"type": "struct", "optional": True, "name": "io.debezium.connector.postgresql.Message",
                 "fields": [_field("string", "prefix"), _field("bytes", "content", True)],
                 "field": "message"}
        key = {"schema": {"type": "struct", "fields": [_field("string", "prefix", True)],
                          "optional": False, "name": "io.debezium.connector.postgresql.MessageKey"},
               "payload": key}
        value = {"schema": {"type": "struct", "optional": False,
                            "name": "io.debezium.connector.postgresql.MessageValue",
                            "fields": [*_op_and_times(),
                                       source_schema("io.debezium.connector.postgresql.Source"), block]},
                 "payload": value}
    return f"{prefix}.message", _dumps(key), _dumps(value)


def dumps(document: Any) -> bytes:
    return _dumps(document)
