"""Where a lookup reads dossiers: the one-stop database (read-only role) or the ledger.

`DatabaseDossiers` (``oa.lookup_dsn`` set) queries the vendor's dossier table with the
column names of ``[source.columns]`` and maps rows with the same `SourceMapping` as the
change events, so statuses and dates read exactly as in notifications. Every citizen
value is a bound parameter; the session is also forced read-only on PostgreSQL, in case
the configured role can write.

`LedgerDossiers` (no DSN) reads the bridge's own last-known state of each dossier.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import Engine, column, func, literal, select, table
from sqlalchemy.sql.expression import ColumnElement

from bridge import dburl
from bridge.errors import BadInputError
from bridge.ledger.tables import dossier_state, notifications
from bridge.mapping import SourceMapping
from bridge.model import OPEN_STATUSES, Dossier
from bridge.phone import normalise_phone
from bridge.settings import Settings
from bridge.transitions import load_state, state_fragment

log = logging.getLogger(__name__)

_PHONE_JUNK = (" ", ".", "-", "+", "(", ")", "/")
LOOKUP_FIELDS = ("code", "procedure_name", "agency_name", "applicant_phone", "status",
                 "received_at", "due_at", "finished_at", "fee_amount", "note")


class DossierSource(Protocol):
    def by_codes(self, codes: list[str]) -> dict[str, Dossier]: ...

    def open_for_phone(self, phone: str) -> list[Dossier]: ...


def _open_for(found: list[Dossier], phone: str) -> list[Dossier]:
    result = [d for d in found if normalise_phone(d.applicant_phone) == phone and d.status in OPEN_STATUSES]
    return sorted(result, key=lambda d: d.code)


class LedgerDossiers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_codes(self, codes: list[str]) -> dict[str, Dossier]:
        if not codes:
            return {}
        with self.engine.connect() as conn:
            keys = dict(conn.execute(select(notifications.c.dossier_code,
                                            notifications.c.dossier_key)
                                     .where(notifications.c.dossier_code.in_(codes))).all())
            states = self._states(conn, list(set(keys.values())))
            found = {code: states[key] for code, key in keys.items() if key in states}
            for code in codes:
                if code not in found:  # a dossier that never notified anyone: scan the state
                    state = self._scan_for_code(conn, code)
                    if state is not None:
                        found[code] = state
        return {code: d for code, d in found.items() if d.code == code}

    def open_for_phone(self, phone: str) -> list[Dossier]:
        with self.engine.connect() as conn:
            keys = list(conn.execute(select(notifications.c.dossier_key).distinct()
                                     .where(notifications.c.phone == phone)).scalars())
            states = self._states(conn, keys)
        return _open_for(list(states.values()), phone)

    @staticmethod
    def _states(conn: Any, keys: list[str]) -> dict[str, Dossier]:
        out: dict[str, Dossier] = {}
        for start in range(0, len(keys), 500):
            rows = conn.execute(select(dossier_state.c.dossier_key, dossier_state.c.state)
                                .where(dossier_state.c.dossier_key.in_(keys[start:start + 500])))
            for key, state in rows:
                out[key] = load_state(state)
        return out

    @staticmethod
    def _scan_for_code(conn: Any, code: str) -> Dossier | None:
        # The stored JSON holds `"code":"<code>"` (compact, as dump_state writes it); the code
        # is validated (no LIKE wildcards can reach here: only digits, letters, dots and
        # dashes) and bound as a parameter.
        pattern = literal(f"%{state_fragment('code', code)}%")
        row = conn.execute(select(dossier_state.c.state)
                           .where(dossier_state.c.state.like(pattern)).limit(1)).first()
        return None if row is None else load_state(row.state)


class DatabaseDossiers:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        dsn = settings.oa.lookup_dsn
        if engine is None:
            if dsn is None:
                raise BadInputError("oa.lookup_dsn is not set")
            engine = read_only_engine(dsn.get_secret_value())
        self.engine = engine
        self.mapping = SourceMapping(settings.source)
        cols = settings.source.columns.model_dump()
        self._code, self._phone = cols["code"], cols["applicant_phone"]
        schema, _, name = settings.source.tables[0].rpartition(".")
        # Only what an answer needs: the lookup role may be granted just these columns
        # (schemas/reference.sql), never the applicant's name or ID.
        wanted = dict.fromkeys([*(cols[f] for f in LOOKUP_FIELDS),
                                *settings.source.note_columns.values()])
        self.table = table(name, *[column(c) for c in wanted], schema=schema or None)

    def by_codes(self, codes: list[str]) -> dict[str, Dossier]:
        if not codes:
            return {}
        query = select(self.table).where(self.table.c[self._code].in_(codes))
        return {d.code: d for d in self._dossiers(query) if d.code in codes}

    def open_for_phone(self, phone: str) -> list[Dossier]:
        # Phones are stored as typed at the desk (0909 123 456, +84 909…): compare digits.
        digits: ColumnElement[Any] = self.table.c[self._phone]
        for junk in _PHONE_JUNK:
            digits = func.replace(digits, junk, "")
        local = "0" + phone[2:]
        query = select(self.table).where(digits.in_([phone, local, "00" + phone, phone[2:]]))
        return _open_for(self._dossiers(query), phone)

    def _dossiers(self, query: Any) -> list[Dossier]:
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        found: list[Dossier] = []
        for row in rows:
            try:
                found.append(self.mapping.dossier(row))
            except BadInputError as exc:  # one odd row must not hide the others
                log.warning("dossier row skipped in lookup", extra={"error": str(exc)})
        return found


def read_only_engine(dsn: str) -> Engine:
    url = dburl.engine_url(dsn, "oa.lookup_dsn")
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        connect_args["options"] = "-c default_transaction_read_only=on -c statement_timeout=5000"
    return dburl.create_engine("oa.lookup_dsn", url, pool_size=4, max_overflow=2,
                               pool_pre_ping=True, connect_args=connect_args)


def make_source(settings: Settings, ledger_engine: Engine) -> DossierSource:
    if settings.oa.lookup_dsn is not None and settings.oa.lookup_dsn.get_secret_value():
        return DatabaseDossiers(settings)
    return LedgerDossiers(ledger_engine)
