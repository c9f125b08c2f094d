"""An index for redacting old sent notices (`ledger.redact_sent_after_days`): the hourly
pass reads sent notices by age instead of every sent notice."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, MetaData, String, Table

from bridge.ledger.migrations import create_index


def upgrade(conn: Connection) -> None:
    notifications = Table("notifications", MetaData(), Column("status", String(12)),
                          Column("updated_at_ms", BigInteger))
    create_index(conn, Index("notifications_status_updated", notifications.c.status,
                             notifications.c.updated_at_ms))
