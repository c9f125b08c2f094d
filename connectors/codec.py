"""A column's codec: its Connect schema and how its values become Debezium JSON values."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.decode.types import TOAST_PLACEHOLDER, TOAST_PLACEHOLDER_BYTES

# How a column's text form becomes its JSON value on the native event path (connectors/_rowjson.c
# switches on these numbers): copied as a JSON string, copied as a number, t/f, a UTC
# timestamptz reformatted, numeric(p,s) as Connect's Decimal — or through `from_text`.
AS_TEXT, AS_INT, AS_BOOL, AS_UTC_TIMESTAMP, AS_DECIMAL, BY_CONVERTER = range(6)



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
    form: int = BY_CONVERTER  # what the native event path may do without calling from_text

    def text_converter(self) -> Callable[[str], Any] | None:
        """`from_text`, or None for text columns, whose value is the text itself."""
        return None if self.form == AS_TEXT else self.from_text

    def unavailable(self) -> str:
        """This column's unchanged TOASTed value, Debezium's `unavailable.value.placeholder`:
        a binary column gets the placeholder's bytes, base64 under JsonConverter (the text
        itself would not decode as base64, and a Kafka Connect sink with schemas would fail)."""
        return TOAST_PLACEHOLDER_BYTES if self.type == "bytes" and self.name is None else TOAST_PLACEHOLDER

    def zero(self) -> Any:
        """What Debezium writes for a NOT NULL column whose value it was not sent (a delete's
        other columns under REPLICA IDENTITY DEFAULT): a required field cannot be null."""
        return _ZEROS.get(self.name or "", _ZEROS.get(self.type))

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


# By semantic name first, then by Connect type (JdbcValueConverters' fallbacks).
_ZEROS: dict[str, Any] = {
    "io.debezium.time.ZonedTimestamp": "1970-01-01T00:00:00Z", "io.debezium.time.ZonedTime": "00:00:00Z",
    "org.apache.kafka.connect.data.Decimal": "AA==",  # unscaled 0
    "io.debezium.data.VariableScaleDecimal": {"scale": 0, "value": "AA=="},
    "int8": 0, "int16": 0, "int32": 0, "int64": 0, "float": 0.0, "double": 0.0,
    "boolean": False, "string": "", "bytes": "",
}


def as_text(value: str) -> str:
    """Text columns: the identity (the streamer skips calling it)."""
    return value


def python_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
