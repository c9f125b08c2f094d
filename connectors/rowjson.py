"""Inserts and updates straight from pgoutput's TupleData to their Debezium events.

Inserts, and updates that carry no old tuple, are most of a stream, and their row only goes
on to Kafka: `connectors/_rowjson.c` writes the row's JSON from the server's text into
the transaction's event frame (`envelope.TransactionEvents.frame`) in one pass, instead
of building a dict of converted values, serialising it and %-formatting the event around
it (the connector thread's ~4 µs of ~8 per row on bench/capture.py). Columns of the
common forms (`codec.AS_*`) are copied; others go through their codec's `from_text` and
orjson, and a row the native pass cannot take (malformed, not UTF-8, a value its
converter rejects) is left to the Python path, which reports it as it always has. The two
give the same bytes (tests/connectors/test_capture_rowjson.py). Streaming has the encoder
hand its record to the producer itself (`Delivery.send_row`): no tuple between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import orjson

from connectors.codec import AS_DECIMAL
from connectors.envelope import TableSchema

try:
    from connectors._rowjson import Encoder
except ImportError:  # a pure-Python install (setup.py): rows are decoded to dicts instead
    Encoder = None  # type: ignore[assignment,misc]

NEW_TUPLE: Final = 78  # 'N': payload[5] of an insert, and of an update without an old tuple


def row_encoder(schema: TableSchema, schemas: bool,
                clock: Callable[[], int] | None = None) -> Encoder | None:
    """The native encoder of a table's inserts and updates (`schemas`: keys and events with
    their schema; `clock`: ns since the epoch, the system's when None), where it applies (a
    key of at most one column)."""
    if Encoder is None or len(schema.key_columns) > 1:
        return None
    names = [c.name for c in schema.columns]
    key: tuple[int, bytes, bytes] | None = None
    if schema.key_columns:
        # The key's bytes around its column's value, as TableSchema.key_json writes them
        # (NUL cannot occur in that JSON: control characters are escaped).
        head, _, tail = (schema.key_json(b"\0", schemas) or b"").partition(b"\0")
        key = (names.index(schema.key_columns[0]), head, tail)
    # Each name with the comma before it: one put per column in C.
    columns = tuple(((b"," if i else b"") + orjson.dumps(c.name) + b":", c.codec.form,
                     int(c.codec.parameters["scale"]) if c.codec.form == AS_DECIMAL else 0,
                     c.codec.text_converter(), orjson.dumps(c.codec.unavailable()))
                    for i, c in enumerate(schema.columns))
    return Encoder(columns, key, orjson.dumps, clock)
