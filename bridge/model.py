"""Data that crosses stage boundaries: change events, dossiers, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

Op = Literal["c", "u", "d", "r", "t", "m"]

KINDS = (
    "SUBMITTED", "RECEIVED", "REJECTED", "SUPPLEMENT_REQUESTED", "FEE_REQUESTED", "WITHDRAWN",
    "STOPPED", "RESULT_READY", "RESULT_RETURNED", "APOLOGY_RESCHEDULED",
)
# The national portal's status codes (design.md §3) and the notice each one sends.
STATUS_KIND: dict[int, str | None] = {
    1: "SUBMITTED", 2: "RECEIVED", 3: "REJECTED", 4: None, 5: "SUPPLEMENT_REQUESTED",
    6: "FEE_REQUESTED", 7: "WITHDRAWN", 8: "STOPPED", 9: "RESULT_READY", 10: "RESULT_RETURNED",
}
# Statuses in which the dossier is still with the administration or the citizen; the
# others (3 not accepted, 7 withdrawn, 8 stopped, 10 result delivered) close it.
OPEN_STATUSES = frozenset({1, 2, 4, 5, 6, 9})


class Unavailable:
    """Debezium's unchanged-TOAST placeholder: the value exists but was not sent."""

    # ClassVar: when mypyc compiles this module (setup.py), a class attribute that is
    # not declared ClassVar is taken for an instance attribute.
    _instance: ClassVar[Unavailable | None] = None

    def __new__(cls) -> Unavailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE = Unavailable()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A value the event carries but that cannot be read without a setting the bridge lacks
    (a schemaless decimal's scale). Only the notice that shows it is refused: the others of
    the dossier still go out."""

    reason: str


# The records built once per change event (SourceInfo, ChangeEvent, Dossier, Notification)
# are slotted but not frozen: a frozen dataclass sets each field through
# object.__setattr__, which cost ~2 µs per record, a tenth of the per-event budget of
# `render` (bench/render.py). Nothing mutates them after construction; `replace` copies.
@dataclass(slots=True)
class SourceInfo:
    connector: str
    db: str
    schema: str
    table: str
    ts_ms: int | None
    snapshot: str
    # A connector-independent position of the change in the source log, stable across
    # redelivery: "pg:<txId>:<lsn>", "mysql:<file>:<pos>:<row>", "sqlserver:<commit>:<change>", ...
    position: str | None


@dataclass(slots=True)
class ChangeEvent:
    """A decoded Debezium envelope; row values are already typed where a schema said how."""

    op: Op
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: SourceInfo
    ts_ms: int | None
    # Derived identities, computed once per event by the pipeline (bridge/pipeline.py).
    dossier_key: str | None = field(default=None, compare=False, repr=False)
    event_id: str | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Dossier:
    """The canonical dossier (design.md §3). Fields absent from an event are UNAVAILABLE."""

    id: Any
    code: str
    status: int | None | Unavailable  # UNAVAILABLE when the event had no status column
    procedure_code: Any = UNAVAILABLE
    procedure_name: Any = UNAVAILABLE
    agency_name: Any = UNAVAILABLE
    applicant_name: Any = UNAVAILABLE
    applicant_phone: Any = UNAVAILABLE
    received_at: datetime | None | Unavailable = UNAVAILABLE
    due_at: datetime | None | Unavailable = UNAVAILABLE
    finished_at: datetime | None | Unavailable = UNAVAILABLE
    fee_amount: Decimal | None | Unavailable | Unreadable = UNAVAILABLE
    note: Any = UNAVAILABLE
    updated_at: datetime | None | Unavailable = UNAVAILABLE


# Dossier's fields in declaration order: the order of its positional construction.
DOSSIER_FIELDS = tuple(f.name for f in fields(Dossier))


@dataclass(slots=True)
class Notification:
    dossier_code: str
    dossier_id: Any
    kind: str
    phone: str | None
    text: str
    template_data: dict[str, str]
    idempotency_key: str
    event_id: str
    source_ts_ms: int | None
    template_version: str

    def to_json(self) -> dict[str, Any]:
        """The dry-run contract of design.md §4 (schemas/notification.schema.json)."""
        return {
            "dossier_code": self.dossier_code,
            "kind": self.kind,
            "recipient": {"phone": self.phone},
            "text": self.text,
            "template_data": self.template_data,
            "idempotency_key": self.idempotency_key,
            "event_id": self.event_id,
            "template_version": self.template_version,
        }
