"""The transition engine (design.md §3): which change of a dossier tells the citizen what.

Pure: it reads and writes the dossier's last-known state through a `StateStore`,
so the same rules run in `render` (in memory) and in the bridge (SQL ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from operator import attrgetter
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, Protocol

import orjson

from bridge.model import (
    DOSSIER_FIELDS, STATUS_KIND, UNAVAILABLE, ChangeEvent, Dossier, Unavailable, Unreadable,
)

_all_fields = attrgetter(*DOSSIER_FIELDS)
_JSON_PLAIN = frozenset({str, int, float, bool, type(None)})
# Statuses during which a later due date means the office missed its appointment.
_APOLOGY_STATUSES = frozenset({2, 4})


class StateStore(Protocol):
    def get(self, dossier_key: str) -> Dossier | None: ...

    def put(self, dossier_key: str, dossier: Dossier) -> None: ...

    def delete(self, dossier_key: str) -> None: ...


class MemoryStateStore:
    def __init__(self) -> None:
        self._states: dict[str, Dossier] = {}

    def get(self, dossier_key: str) -> Dossier | None:
        return self._states.get(dossier_key)

    def put(self, dossier_key: str, dossier: Dossier) -> None:
        self._states[dossier_key] = dossier

    def delete(self, dossier_key: str) -> None:
        self._states.pop(dossier_key, None)


@dataclass(slots=True)  # not frozen, for speed: see bridge/model.py
class Change:
    """What one row change means for the citizen, before rendering."""

    kind: str | None
    dossier: Dossier
    previous_due_at: datetime | None


def known(value: Any) -> bool:
    return value is not None and not isinstance(value, Unavailable)


def merge(after: Dossier, stored: Dossier | None) -> Dossier:
    """Fill values the event did not carry (unchanged TOAST, partial rows) from the store."""
    if stored is None:
        return after
    values = _all_fields(after)
    if UNAVAILABLE not in values:  # a full row: the usual case
        return after
    gaps = {name: getattr(stored, name) for name, value in zip(DOSSIER_FIELDS, values)
            if value is UNAVAILABLE}
    return replace(after, **gaps)


def decide(op: str, after: Dossier, before_status: int | None | Unavailable,
           before_due: datetime | None | Unavailable, stored: Dossier | None,
           zone: tzinfo, replayed: bool = False) -> Change:
    """Apply the rules of design.md §3 to one insert or update.

    `before_*` come from the event's `before` image (often absent or only the key
    under REPLICA IDENTITY DEFAULT); the store's last-known state stands in for
    what the event does not say. A dossier never seen before, updated without a
    `before` status, is treated as changed: missing a notice is worse for the
    citizen than repeating one.

    A replayed event (a dead letter, after the fix) older than the stored state (its
    `updated_at` earlier) is one the dossier has moved past, and changes nothing: its
    notice would be stale, and the state it carries would make the next notice repeat.
    Not so in the stream itself: there an earlier `updated_at` is an application server's
    clock behind another's, and the change is real.

    An apology is for a later appointment *day* in `zone`: a due time moved within the
    day would read "not done by 20/06/2024 … new date: 20/06/2024".
    """
    if replayed and stored is not None and isinstance(after.updated_at, datetime) \
            and isinstance(stored.updated_at, datetime) and after.updated_at < stored.updated_at:
        return Change(None, stored, None)
    dossier = merge(after, stored)
    # isinstance rather than known(): the same test for these fields' types, and it tells
    # the type checker (and mypyc, which enforces Change's annotations) that no UNAVAILABLE
    # gets through.
    status = dossier.status if isinstance(dossier.status, int) else None
    previous_status = before_status if isinstance(before_status, int) else (
        stored.status if stored is not None and isinstance(stored.status, int) else None)
    previous_due = before_due if isinstance(before_due, datetime) else (
        stored.due_at if stored is not None and isinstance(stored.due_at, datetime) else None)
    if op == "c" or previous_status is None or previous_status != status:
        return Change(STATUS_KIND.get(status) if status else None, dossier, previous_due)
    due = dossier.due_at if isinstance(dossier.due_at, datetime) else None
    if status in _APOLOGY_STATUSES and due is not None and previous_due is not None \
            and due.astimezone(zone).date() > previous_due.astimezone(zone).date():
        return Change("APOLOGY_RESCHEDULED", dossier, previous_due)
    return Change(None, dossier, previous_due)


def never_notifies(event: ChangeEvent) -> bool:
    """Snapshot reads, deletes, truncates and logical messages are never news to a citizen."""
    return event.op in ("r", "d", "t", "m") or event.source.snapshot != "false"


# --- storage form of a Dossier (JSON-safe) -------------------------------------------------

def dossier_to_dict(dossier: Dossier) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(DOSSIER_FIELDS, _all_fields(dossier)):
        if value.__class__ in _JSON_PLAIN:  # most fields: no conversion (hot path)
            out[name] = value
        elif isinstance(value, datetime):
            out[name] = {"$dt": value.isoformat()}
        elif isinstance(value, Decimal):
            out[name] = {"$dec": str(value)}
        elif value is not UNAVAILABLE and not isinstance(value, Unreadable):  # not state
            out[name] = value
    return out


def dossier_from_dict(data: dict[str, Any]) -> Dossier:
    values: list[Any] = []
    for name in DOSSIER_FIELDS:
        value = data.get(name, UNAVAILABLE)
        if value.__class__ is dict:
            if "$dt" in value:
                value = datetime.fromisoformat(value["$dt"])
            elif "$dec" in value:
                value = Decimal(value["$dec"])
        values.append(value)
    return Dossier(*values)


def dump_state(dossier: Dossier) -> str:
    """The text a dossier's last-known state is stored as (ledger `dossier_state.state`)."""
    return orjson.dumps(dossier_to_dict(dossier), default=str).decode()


def state_fragment(name: str, value: str) -> str:
    """How ``name: value`` appears inside `dump_state`'s text (for a LIKE search)."""
    return orjson.dumps({name: value}).decode()[1:-1]


def load_state(text: str | bytes) -> Dossier:
    return dossier_from_dict(orjson.loads(text))
