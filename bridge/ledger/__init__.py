"""The delivery ledger (design.md §5): SQLAlchemy Core over SQLite (default) or PostgreSQL.

- `Ledger` — events seen, notifications with their status, delivery attempts, the
  dossiers' last-known state (admission is one transaction per polled batch);
- `LedgerTokenStore`, `LedgerFollowers` — the dispatcher's durable stores;
- `migrate` — the versioned schema runner; add a migration as described in
  `bridge/ledger/migrate.py`.
"""

from __future__ import annotations

from bridge.ledger.admission import Admission, Incoming, SqlStateStore
from bridge.ledger.ledger import Ledger
from bridge.ledger.migrate import current_version, migrate
from bridge.ledger.records import StoredNotification
from bridge.ledger.stores import LedgerFollowers, LedgerTokenStore

__all__ = ["Admission", "Incoming", "Ledger", "LedgerFollowers", "LedgerTokenStore",
           "SqlStateStore", "StoredNotification", "current_version", "migrate"]
