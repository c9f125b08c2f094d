"""An index for redacting closed dossiers' states (`ledger.redact_closed_after_days`): the
hourly pass reads dossier states by age instead of every state."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, String, Table

from bridge.ledger.migrations import create_index


def upgrade(conn: Connection) -> None:
    dossier_state = Table("dossier_state", MetaData(), Column("updated_at_ms", BigInteger),
                          Column("dossier_key", String(255)))
    create_index(conn, Index("dossier_state_updated", dossier_state.c.updated_at_ms,
                             dossier_state.c.dossier_key))
