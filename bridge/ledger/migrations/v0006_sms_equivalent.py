"""Each sent notice's all-SMS baseline: what its SMS text would have cost (parts × price),
so the report counts savings per notice, not one SMS price for every notice. Notices sent
before have none; the report counts them at one SMS each, as it did."""

from __future__ import annotations

from sqlalchemy import Column, Connection, Integer

from bridge.ledger.migrations import add_column


def upgrade(conn: Connection) -> None:
    add_column(conn, "notifications", Column("sms_equivalent_vnd", Integer))
