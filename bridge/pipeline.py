"""decode → transition → render: one change event in, the citizen's notices out.

The same pipeline serves `onestop-bridge render` (in-memory state) and the
bridge (ledger-backed state, see bridge/ledger); it does no I/O of its own.
"""

from __future__ import annotations

import hashlib
from zoneinfo import ZoneInfo

from bridge.decode.envelope import decode_value, event_id, parse_json
from bridge.errors import BadInputError
from bridge.mapping import SourceMapping
from bridge.model import ChangeEvent, Notification
from bridge.phone import normalise_phone
from bridge.settings import Settings
from bridge.templates import Renderer
from bridge.transitions import Change, StateStore, decide, never_notifies


def idempotency_key(event_id_: str, kind: str) -> str:
    """Stable for a change event and kind; 32 hex chars fit ZNS's 48-char tracking_id."""
    return hashlib.sha256(f"{event_id_}:{kind}".encode()).hexdigest()[:32]


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.mapping = SourceMapping(settings.source)
        self.zone = ZoneInfo(settings.source.timezone)
        self.renderer = Renderer(settings.templates.version, self.zone,
                                 settings.templates.lookup_url, settings.oa.oa_id)

    def decode(self, value: bytes | str | None) -> ChangeEvent | None:
        """None for tombstones, heartbeats and transaction markers; BadInputError if malformed."""
        return decode_value(parse_json(value))

    def dossier_key(self, event: ChangeEvent) -> str:
        key = event.dossier_key
        if key is None:
            row = event.after if event.after is not None else event.before
            # truncate / message: no row, the table stands in
            key = event.dossier_key = f"{event.source.schema}.{event.source.table}" \
                if row is None else self.mapping.key(row)
        return key

    def event_id(self, event: ChangeEvent) -> str:
        eid = event.event_id
        if eid is None:
            eid = event.event_id = event_id(event, self.dossier_key(event))
        return eid

    def phone(self, event: ChangeEvent) -> str | None:
        """The citizen's number in the event's row as the column mapping reads it now (a
        replay after fixing `[source.columns] applicant_phone`); None when unreadable."""
        try:
            raw = self.mapping.dossier(event.after).applicant_phone if event.after else None
        except BadInputError:  # the replayed event fails in admission, with its reason
            return None
        return normalise_phone(raw)

    def notify(self, event: ChangeEvent, store: StateStore, replayed: bool = False
               ) -> list[Notification]:
        """Update the dossier's last-known state and return what the citizen must be told
        (`replayed`: a record of the DLQ sent again, see transitions.decide)."""
        if event.op in ("t", "m"):
            return []
        key = self.dossier_key(event)
        if event.op == "d":
            store.delete(key)
            return []
        after = self.mapping.dossier(event.after or {})
        stored = store.get(key)
        before = event.before or {}
        change = decide(event.op, after, self.mapping.status(before) if before else None,
                        self.mapping.moment(before, "due_at") if before else None, stored,
                        self.zone, replayed)
        notices = [] if never_notifies(event) or change.kind is None \
            else [self._notice(event, change.kind, change)]
        store.put(key, change.dossier)  # after rendering: a refused notice leaves no state
        return notices

    def _notice(self, event: ChangeEvent, kind: str, change: Change) -> Notification:
        eid = self.event_id(event)
        text, template_data = self.renderer.render(kind, change.dossier, change.previous_due_at)
        return Notification(  # positional: hot path (field order in bridge/model.py)
            change.dossier.code, change.dossier.id, kind,
            normalise_phone(change.dossier.applicant_phone), text, template_data,
            idempotency_key(eid, kind), eid, event.source.ts_ms, self.renderer.version)


__all__ = ["BadInputError", "Pipeline", "idempotency_key"]
