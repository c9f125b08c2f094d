"""Signal rows (Debezium's signal table: id, type, data) read as actions, or refused.

Pure parsing: what `incremental.py` acts on. A refusal is a reason string, logged by the
caller; a signal never stops capture. Filters (`additional-conditions`) are pasted into the
chunk query, so anything that is not one SQL condition on the rows is refused here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.errors import ConfigError
from connectors.pgcatalog import TableRef


@dataclass(frozen=True)
class Signal:
    """One row of the signal table, as an action."""

    id: str
    action: str  # one of ACTIONS
    tables: tuple[str, ...] = ()  # "schema.table"; empty in a stop: every table
    filters: dict[str, str] = field(default_factory=dict)  # table -> SQL condition on its rows
    message: str = ""  # of a "log" signal


ACTIONS: Final = ("execute-snapshot", "stop-snapshot", "pause-snapshot", "resume-snapshot", "log")
_KNOWN_KEYS: Final = frozenset({"data-collections", "type", "additional-conditions", "surrogate-key"})


def parse_signal(row: dict[str, Any]) -> Signal | str:
    """The action a signal row asks for, or why it is ignored."""
    kind, text = row.get("type"), row.get("data")
    if kind not in ACTIONS:
        return f"type {kind!r} is not one this connector acts on ({', '.join(ACTIONS)})"
    try:
        data = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        return f"data is not JSON: {str(text)[:200]!r}"
    if not isinstance(data, dict):
        return "data is not a JSON object"
    if kind == "log":
        message = data.get("message")
        return Signal(str(row.get("id")), kind, message=str(message)[:1000]) if message \
            else "a log signal needs a message"
    snapshot_type = data.get("type", "incremental")
    if not isinstance(snapshot_type, str) or snapshot_type.lower() != "incremental":
        return f"snapshot type {snapshot_type!r} is not supported; only incremental"
    if data.get("surrogate-key"):  # reading by the primary key instead would not be what was asked
        return "surrogate-key is not supported; tables are read by their primary key"
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if kind == "execute-snapshot" and unknown:  # e.g. Debezium 1.x's additional-condition: not a whole table
        return (f"{', '.join(unknown)} is not understood (data takes {', '.join(sorted(_KNOWN_KEYS))}); "
                "nothing is read rather than more than was asked")
    names = data.get("data-collections") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "data-collections is not a list of table names"
    if kind == "execute-snapshot" and not names:
        return "execute-snapshot names no table in data-collections"
    try:
        tables = tuple(str(TableRef.parse(n, "data-collections")) for n in names)
        filters = _conditions(data.get("additional-conditions"), tables)
    except ConfigError as exc:
        return str(exc)
    return Signal(str(row.get("id")), kind, tables, filters)


def _conditions(given: Any, tables: tuple[str, ...]) -> dict[str, str]:
    """Debezium's `additional-conditions`: [{"data-collection": t, "filter": SQL}, …]."""
    if not given:
        return {}
    if not isinstance(given, list) or not all(isinstance(c, dict) for c in given):
        raise ConfigError('additional-conditions is not a list of {"data-collection", "filter"} objects')
    filters: dict[str, str] = {}
    for condition in given:
        name, where = condition.get("data-collection"), condition.get("filter")
        if not isinstance(name, str) or not isinstance(where, str) or not where.strip():
            raise ConfigError("an additional condition needs a data-collection and a non-empty filter")
        table = str(TableRef.parse(name, "additional-conditions"))
        if table not in tables:  # a typo: reading the whole table instead is not what was asked
            raise ConfigError(f"additional-conditions names {table}, which is not in data-collections")
        if table in filters:
            raise ConfigError(f"additional-conditions names {table} twice; join the filters with AND")
        # One condition on the rows, pasted into the chunk query (as Debezium does): a second
        # statement, a comment swallowing the query's rest, or a parenthesis closing the
        # query's own (`a) OR (b` would lift the key bound: the same chunk read for ever).
        if any(token in where for token in (";", "--", "/*")) or not _balanced(where):
            raise ConfigError(f"the filter for {table} is not one SQL condition (no ';', '--' or '/*', "
                              f"parentheses and quotes closed): {where[:200]!r}")
        filters[table] = where.strip()
    return filters


def _balanced(text: str) -> bool:
    """Parentheses closed in order and every quote closed, outside '…' strings, "…" names
    and $tag$…$tag$ strings."""
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "'\"":
            end = text.find(c, i + 1)
            while end != -1 and text[end + 1:end + 2] == c:  # '' or "" inside: escaped
                end = text.find(c, end + 2)
            if end == -1:
                return False
            i = end
        elif c == "$" and (tag := re.match(r"\$[A-Za-z_]*\$", text[i:])) and (i == 0 or not text[i - 1].isalnum()):
            end = text.find(tag.group(0), i + len(tag.group(0)))
            if end == -1:
                return False
            i = end + len(tag.group(0)) - 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0
