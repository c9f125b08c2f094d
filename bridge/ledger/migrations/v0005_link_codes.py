"""Proof that a follower owns the phone number they share (bridge/citizen/linking.py): the
one-time code sent to that number by ZNS, until it is typed back, expires or runs out of tries."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, String, Table

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
    ).create(conn)
