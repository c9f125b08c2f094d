"""Vendor row → canonical Dossier, by configuration (design.md §6).

Column names and status values differ per one-stop vendor; both are mapped by
`[source.columns]` and `[source.status_map]`. A status that maps to nothing is a
bad input: reported, never guessed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from bridge.decode.types import (
    date_from_days, decimal_from_base64, parse_iso_datetime, to_decimal, wall_clock_from_epoch,
)
from bridge.errors import BadInputError
from bridge.model import DOSSIER_FIELDS, UNAVAILABLE, Dossier, Unavailable, Unreadable
from bridge.settings import SourceSettings

_EPOCH_UNITS = {"timestamp_ms": 1_000, "timestamp_us": 1_000_000, "timestamp_ns": 1_000_000_000}
# The reference schema's fee_amount is NUMERIC(14,2) (design.md §3). The connector's default
# (schemas off, Debezium's precise decimals) writes it as base64 without its scale; with the
# reference column names the default configuration reads it at that scale, so `capture` and
# `run` work together on their defaults. A renamed column says nothing of its scale: not guessed.
REFERENCE_FEE_TYPE = "decimal_base64:2"
# Debezium's string mode (toPlainString) and doubles. A digits-only string that is also base64
# decodes to a negative unscaled number (its first byte >= 0xD0): never a fee.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class SourceMapping:
    def __init__(self, source: SourceSettings) -> None:
        self.columns = source.columns.model_dump()
        # Without regard to case: ONESTOP_SOURCE__STATUS_MAP__CHO_DUYET arrives lower-cased.
        self.status_map = {str(k).casefold(): v for k, v in source.status_map.items()}
        self.note_columns = dict(source.note_columns)
        self.column_types = dict(source.column_types)
        if self.columns["fee_amount"] == "fee_amount":
            self.column_types.setdefault("fee_amount", REFERENCE_FEE_TYPE)
        self.zone = ZoneInfo(source.timezone)
        self._row_columns = tuple(self.columns[name] for name in DOSSIER_FIELDS)
        # Full rows (the usual case) are read in one C call; a KeyError means a narrower row.
        self._full_row = itemgetter(*self._row_columns)

    def key(self, row: dict[str, Any]) -> str:
        """The dossier's identity in the state store: its primary key, else its code."""
        value = row.get(self.columns["id"])
        if value is None or isinstance(value, Unavailable):
            value = row.get(self.columns["code"])
        if value is None or isinstance(value, Unavailable):
            raise BadInputError(f"row has neither {self.columns['id']!r} nor {self.columns['code']!r}")
        return str(value)

    def dossier(self, row: dict[str, Any]) -> Dossier:
        """A full row (an `after` image). Missing columns become UNAVAILABLE (the id: None)."""
        try:
            values = self._full_row(row)
        except KeyError:
            values = tuple(row.get(column, UNAVAILABLE) for column in self._row_columns)
            self._check_narrow(row, values)
            if values[0] is UNAVAILABLE:
                values = (None, *values[1:])
        (id_, code, status, procedure_code, procedure_name, agency_name, applicant_name,
         applicant_phone, received_at, due_at, finished_at, fee_amount, note, updated_at) = values
        if code.__class__ is not str or not code.strip():
            raise BadInputError(f"missing dossier code (column {self.columns['code']!r})")
        moment = self._moment
        status_code = self._status(status)
        if self.note_columns and status_code.__class__ is int:
            note = self._status_note(row, status_code, note)  # type: ignore[arg-type]
        return Dossier(  # positional: hot path (field order in bridge/model.py)
            id_, code.strip(), status_code, _text(procedure_code), _text(procedure_name),
            _text(agency_name), _text(applicant_name), _text(applicant_phone),
            moment("received_at", received_at), moment("due_at", due_at),
            moment("finished_at", finished_at), self._decimal("fee_amount", fee_amount),
            _text(note), moment("updated_at", updated_at))

    def _check_narrow(self, row: dict[str, Any], values: tuple[Any, ...]) -> None:
        """A row without the code, status or phone column is a mapping that names a column
        the table does not have (a typo, a vendor's other name): every notice would be lost
        in silence (no status: no kind), or every one dead-lettered as "no phone"."""
        for field in ("code", "status", "applicant_phone"):
            if values[DOSSIER_FIELDS.index(field)] is UNAVAILABLE:
                raise _not_in_row(self.columns[field], f"[source.columns] {field}", row)

    def _status_note(self, row: dict[str, Any], status: int, note: Any) -> Any:
        """The reason for `status` from its own column (`[source.note_columns]`), if it has one."""
        column = self.note_columns.get(status)
        if column is None:
            return note
        if column not in row:
            raise _not_in_row(column, f"[source.note_columns] {status}", row)
        return row[column]

    def status(self, row: dict[str, Any]) -> int | None | Unavailable:
        return self._status(row.get(self.columns["status"], UNAVAILABLE))

    def moment(self, row: dict[str, Any], name: str) -> datetime | None | Unavailable:
        return self._moment(name, row.get(self.columns[name], UNAVAILABLE))

    def _status(self, raw: Any) -> int | None | Unavailable:
        if raw is None or raw is UNAVAILABLE:
            return raw
        if self.status_map:
            code = self.status_map.get(str(raw).casefold())
            if code is None:
                # A map replaces the national codes: one that lists only an odd value
                # leaves 1..10 unmapped too (never read as themselves: a vendor's 3 may not
                # be the portal's 3).
                raise BadInputError(f"status {raw!r} maps to no national status code: add it to "
                                    f"[source.status_map], which must list every value the "
                                    f"database stores (national codes too, e.g. \"2\" = 2)")
            return code
        if raw.__class__ is int and 1 <= raw <= 10:  # the usual case
            return raw
        try:
            code = int(str(raw))
        except ValueError:
            code = 0
        if not 1 <= code <= 10:
            raise BadInputError(f"status {raw!r} is not a national status code 1..10 "
                                f"(configure [source.status_map])")
        return code

    def _moment(self, name: str, value: Any) -> datetime | None | Unavailable:
        if value.__class__ is str:  # the usual case: ZonedTimestamp text
            value = parse_iso_datetime(value)
            return value if value.tzinfo else value.replace(tzinfo=self.zone)
        if value is None or value is UNAVAILABLE:
            return value
        column = self.columns[name]
        value = self._interpret(name, value)
        if isinstance(value, str):
            value = parse_iso_datetime(value)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=self.zone)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=self.zone)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadInputError(f"{name} ({column}) = {value!r} is not a date or time")
        raise BadInputError(f"{name} ({column}) = {value!r}: integers need "
                            f"[source.column_types] {name} = 'timestamp_ms'|'timestamp_us'|"
                            f"'timestamp_ns'|'date_days' — units are never guessed")

    def _interpret(self, name: str, value: Any) -> Any:
        kind = self.column_types.get(name)
        if kind is None or not isinstance(value, int) or isinstance(value, bool):
            return value
        if kind in _EPOCH_UNITS:
            return wall_clock_from_epoch(value, _EPOCH_UNITS[kind])
        if kind == "date_days":
            return date_from_days(value)
        return value

    def _decimal(self, name: str, value: Any) -> Decimal | None | Unavailable | Unreadable:
        if value is None or value is UNAVAILABLE or isinstance(value, Decimal):
            return value
        kind = self.column_types.get(name, "")
        try:
            if kind.startswith("decimal_base64:") and isinstance(value, str) \
                    and not _PLAIN_NUMBER.fullmatch(value):
                return decimal_from_base64(value, int(kind.split(":", 1)[1]))
            return to_decimal(value)
        except BadInputError:
            # Refused only by the fee notice, so the dossier's other notices are not held back.
            if kind:
                return Unreadable(f"{name} ({self.columns[name]}) = {value!r} is neither a number "
                                  f"nor a base64 decimal ([source.column_types] {name} = {kind!r})")
            # Typically base64 without its scale (schemas off, a renamed column): never guessed.
            return Unreadable(f"{name} ({self.columns[name]}) = {value!r} is not a number (a "
                              f"base64 decimal needs [source.column_types] {name} = "
                              f"'decimal_base64:<scale>', or the connector's schemas on)")


def _not_in_row(column: str, setting: str, row: dict[str, Any]) -> BadInputError:
    return BadInputError(f"column {column!r} ({setting}) is not in the event's row, which has "
                         f"{', '.join(sorted(map(str, row))[:40])}: correct the mapping, then "
                         f"replay the dead-lettered events")


def _text(value: Any) -> Any:
    """Text columns pass through; anything else (a number typed as a phone) becomes text."""
    return value if value.__class__ is str or value is None or value is UNAVAILABLE else str(value)
