"""Vendor row → canonical Dossier, by configuration (design.md §6).

Column names and status values differ per one-stop vendor; both are mapped by
`[source.columns]` and `[source.status_map]`. A status that maps to nothing is a
bad input: reported, never guessed.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bridge.decode.types import (
    date_from_days, decimal_from_base64, parse_iso_datetime, to_decimal, wall_clock_from_epoch,
)
from bridge.errors import BadInputError
from bridge.model import UNAVAILABLE, Dossier, Unavailable
from bridge.settings import SourceSettings

_DATETIME_FIELDS = ("received_at", "due_at", "finished_at", "updated_at")
_TEXT_FIELDS = ("procedure_code", "procedure_name", "agency_name", "applicant_name",
                "applicant_phone", "note")
_EPOCH_UNITS = {"timestamp_ms": 1_000, "timestamp_us": 1_000_000, "timestamp_ns": 1_000_000_000}


class SourceMapping:
    def __init__(self, source: SourceSettings) -> None:
        self.columns = source.columns.model_dump()
        self.status_map = {str(k): v for k, v in source.status_map.items()}
        self.column_types = dict(source.column_types)
        self.zone = ZoneInfo(source.timezone)
        self._text_columns = [(name, self.columns[name]) for name in _TEXT_FIELDS]
        self._time_columns = [(name, self.columns[name]) for name in _DATETIME_FIELDS]

    def key(self, row: dict[str, Any]) -> str:
        """The dossier's identity in the state store: its primary key, else its code."""
        value = row.get(self.columns["id"])
        if value is None or isinstance(value, Unavailable):
            value = row.get(self.columns["code"])
        if value is None or isinstance(value, Unavailable):
            raise BadInputError(f"row has neither {self.columns['id']!r} nor {self.columns['code']!r}")
        return str(value)

    def dossier(self, row: dict[str, Any]) -> Dossier:
        """A full row (an `after` image). Missing columns become UNAVAILABLE."""
        code = row.get(self.columns["code"])
        if code.__class__ is not str or not code.strip():
            raise BadInputError(f"missing dossier code (column {self.columns['code']!r})")
        # Text columns pass through; anything else (a number typed as a phone) becomes text.
        values = {name: value if (value := row.get(column, UNAVAILABLE)).__class__ is str
                  or value is None or value is UNAVAILABLE else str(value)
                  for name, column in self._text_columns}
        for name, column in self._time_columns:
            value = row.get(column, UNAVAILABLE)
            if value.__class__ is str:  # the common case: ZonedTimestamp text
                moment = parse_iso_datetime(value)
                values[name] = moment if moment.tzinfo else moment.replace(tzinfo=self.zone)
            else:
                values[name] = self.moment(row, name)
        return Dossier(row.get(self.columns["id"]), code.strip(), self.status(row),
                       fee_amount=self._decimal(row, "fee_amount"), **values)

    def status(self, row: dict[str, Any]) -> int | None | Unavailable:
        column = self.columns["status"]
        if column not in row:
            return UNAVAILABLE
        raw = row[column]
        if raw is None or isinstance(raw, Unavailable):
            return None if raw is None else UNAVAILABLE
        if self.status_map:
            if str(raw) not in self.status_map:
                raise BadInputError(f"status {raw!r} maps to no national status code "
                                    f"(add it to [source.status_map])")
            return self.status_map[str(raw)]
        try:
            code = int(str(raw))
        except ValueError:
            code = 0
        if not 1 <= code <= 10:
            raise BadInputError(f"status {raw!r} is not a national status code 1..10 "
                                f"(configure [source.status_map])")
        return code

    def moment(self, row: dict[str, Any], name: str) -> datetime | None | Unavailable:
        column = self.columns[name]
        if column not in row:
            return UNAVAILABLE
        value = row[column]
        if value is None or isinstance(value, Unavailable):
            return value
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

    def _decimal(self, row: dict[str, Any], name: str) -> Decimal | None | Unavailable:
        column = self.columns[name]
        if column not in row:
            return UNAVAILABLE
        value = row[column]
        if value is None or isinstance(value, (Unavailable, Decimal)):
            return value
        kind = self.column_types.get(name, "")
        if kind.startswith("decimal_base64:") and isinstance(value, str):
            return decimal_from_base64(value, int(kind.split(":", 1)[1]))
        try:
            return to_decimal(value)
        except BadInputError:
            raise BadInputError(f"{name} ({column}) = {value!r} is not a number (a base64 decimal "
                                f"needs [source.column_types] {name} = 'decimal_base64:<scale>')"
                                ) from None
