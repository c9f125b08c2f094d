"""Proof that a follower owns the phone number they share (bridge/citizen/linking.py): the
one-time code sent to that number by ZNS, until it is typed back, expires or runs out of tries."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Index, Integer, MetaData, String, Table

from bridge.ledger.migrations import AutoId

KEY = String(255)


def upgrade(conn: Connection) -> None:
    Table(
        "link_codes", MetaData(),
        Column("user_id", KEY, primary_key=True),             # one pending number per follower
        Column("phone", String(20), nullable=False),
        Column("code_hash", String(64), nullable=False),      # sha256(user_id:code), not the code
        Column("tries_left", Integer, nullable=False),
        Column("sent_at_ms", BigInteger, nullable=False),
        Column("expires_at_ms", BigInteger, nullable=False),
    ).create(conn, checkfirst=True)
    Table(  # every code sent, for the hourly limits per account and per number
        "link_code_sends", MetaData(),
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("user_id", KEY, nullable=False),
        Column("phone", String(20), nullable=False),
        Column("sent_at_ms", BigInteger, nullable=False),
        Index("link_code_sends_phone", "phone", "sent_at_ms"),
        Index("link_code_sends_user", "user_id", "sent_at_ms"),
    ).create(conn, checkfirst=True)
