"""Inserts and updates straight from pgoutput's TupleData to their Debezium events.

Inserts, and updates that carry no old tuple, are most of a stream, and their row only goes
on to Kafka: `connectors/_rowjson.c` writes the row's JSON from the server's text into
the transaction's event frame (`envelope.TransactionEvents.frame`) in one pass, instead
of building a dict of converted values, serialising it and %-formatting the event around
it (the connector thread's ~4 µs of ~8 per row on bench/capture.py). Columns of the
common forms (`codec.AS_*`) are copied; others go through their codec's `from_text` and
orjson, and a row the native pass cannot take (malformed, not UTF-8, a value its
converter rejects) is left to the Python path, which reports it as it always has. The two
give the same bytes (tests/connectors/test_capture_rowjson.py).
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from connectors.codec import AS_DECIMAL
from connectors.envelope import TableSchema, TransactionEvents

try:
    from connectors._rowjson import encode as _encode
except ImportError:  # a pure-Python install (setup.py): rows are decoded to dicts instead
    _encode = None

NEW_TUPLE: Final = 78  # 'N': payload[5] of an insert, and of an update without an old tuple
_TUPLE_DATA: Final = 6  # where that tuple starts: after the tag, the relation id and 'N'


class RowEncoder:
    """`encoder(payload, events, lsn)` → (event, record key or None), or None for the Python path."""

    # The functions too: a module global or a module's attribute is a dict lookup per call.
    __slots__ = ("columns", "forms", "key", "toast", "dumps", "encode", "clock")

    def __init__(self, schema: TableSchema, toast: str, schemas: bool) -> None:
        names = [c.name for c in schema.columns]
        self.key: tuple[int, bytes, bytes] | None = None
        if schema.key_columns:
            # The key's bytes around its column's value, as TableSchema.key_json writes them
            # (NUL cannot occur in that JSON: control characters are escaped).
            head, _, tail = (schema.key_json(b"\0", schemas) or b"").partition(b"\0")
            self.key = (names.index(schema.key_columns[0]), head, tail)
        self.toast = orjson.dumps(toast)
        self.dumps = orjson.dumps
        self.encode = _encode
        self.clock = time.time_ns
        # Each name with the comma before it, and the forms as bytes: a put and a PyLong
        # read less per column in C.
        self.columns = tuple(
            ((b"," if i else b"") + orjson.dumps(c.name) + b":",
             int(c.codec.parameters["scale"]) if c.codec.form == AS_DECIMAL else 0,
             c.codec.text_converter())
            for i, c in enumerate(schema.columns))
        self.forms = bytes(c.codec.form for c in schema.columns)

    def __call__(self, payload: bytes, events: TransactionEvents, lsn: int) -> Any:
        return self.encode(payload, _TUPLE_DATA, self.columns, self.forms, self.key, self.toast,
                           self.dumps, events.frame, lsn, self.clock())


def row_encoder(schema: TableSchema, toast: str, schemas: bool) -> RowEncoder | None:
    """The native encoder of a table's inserts and updates (`schemas`: keys and events with
    their schema), where it applies (a key of at most one column)."""
    if _encode is None or len(schema.key_columns) > 1:
        return None
    return RowEncoder(schema, toast, schemas)
