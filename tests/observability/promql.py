"""Just enough PromQL structure to ask "does each part of this alert have data?".

An alert expression is mostly `<operand> <comparison> <threshold>` joined by `and`,
`or`, `unless`. When nothing is wrong the whole expression is rightly empty, so the
scrape test checks its operands instead: every one must parse and return series,
except the right side of `unless` and `absent(...)`, which are empty by design.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SET_OPS = re.compile(r"\b(or|and|unless)\b")
_COMPARISONS = re.compile(r"==|!=|>=|<=|>|<")
_MODIFIERS = re.compile(r"^\s*(?:bool\s+)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?"
                        r"(?:(?:group_left|group_right)\s*(?:\([^)]*\))?\s*)?")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                     "${__rate_interval}": "1m", "${__interval}": "15s", "${__range}": "1h"}


@dataclass(frozen=True, slots=True)
class Operand:
    expr: str
    must_have_data: bool


def concrete(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus understands."""
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    return expr


def _top_level(expr: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of `pattern` outside (), {}, [] and quotes."""
    spans, depth, quote, i = [], 0, "", 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and (m := pattern.match(expr, i)):
            if not (pattern is _COMPARISONS and expr[i:i + 2] in ("=~", "!~")):
                spans.append(m.span())
                i = m.end()
                continue
        i += 1
    return spans


def _split(expr: str, pattern: re.Pattern[str]) -> list[tuple[str | None, str]]:
    parts: list[tuple[str | None, str]] = []
    start, op = 0, None
    for begin, end in _top_level(expr, pattern):
        parts.append((op, expr[start:begin]))
        op, start = expr[begin:end], end
    parts.append((op, expr[start:]))
    return [(o, _MODIFIERS.sub("", p, count=1).strip()) for o, p in parts]


def operands(expr: str) -> list[Operand]:
    found: list[Operand] = []
    for set_op, part in _split(concrete(expr), _SET_OPS):
        optional = set_op == "unless" or part.startswith("absent(")
        for _, side in _split(part, _COMPARISONS):
            if side and not _NUMBER.match(side):
                found.append(Operand(side, must_have_data=not optional))
    return found
