"""Today's shape of the citizen-side ledger tables, for queries.

Created by ``bridge/ledger/migrations/v0002_citizen.py``; keep both in step
(tests/citizen/test_store.py compares them). Times are epoch milliseconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

from bridge.ledger.migrations import AutoId

KEY = String(255)
metadata = MetaData()

webhook_inbox = Table(
    "webhook_inbox", metadata,
    Column("seq", AutoId, primary_key=True, autoincrement=True),
    Column("event_key", KEY, nullable=False, unique=True),
    Column("event_name", String(64), nullable=False),
    Column("user_key", KEY, nullable=False),
    Column("body", Text, nullable=False),
    Column("signature_variant", String(32), nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("processed_at_ms", BigInteger),
)

delivery_receipts = Table(
    "delivery_receipts", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("event_key", KEY, nullable=False, unique=True),
    Column("channel", String(20), nullable=False),
    Column("msg_id", KEY),
    Column("tracking_id", KEY),
    Column("idempotency_key", KEY),
    Column("delivered_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
)

oa_outbox = Table(
    "oa_outbox", metadata,

    Column("message_id", KEY, primary_key=True),
    Column("user_id", KEY, nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    Column("delivered_at_ms", BigInteger),
)

lookup_challenges = Table(
    "lookup_challenges", metadata,
    Column("user_id", KEY, primary_key=True),
    Column("codes", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

link_codes = Table(  # created by v0005_link_codes.py
    "link_codes", metadata,
    Column("user_id", KEY, primary_key=True),
    Column("phone", String(20), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("tries_left", Integer, nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
)

link_code_sends = Table(  # created by v0005_link_codes.py
    "link_code_sends", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("user_id", KEY, nullable=False),
    Column("phone", String(20), nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
)

lookup_failures = Table(
    "lookup_failures", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("user_id", KEY, nullable=False),
    Column("reason", String(20), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

lookup_grants = Table(
    "lookup_grants", metadata,
    Column("user_id", KEY, primary_key=True),
    Column("dossier_code", KEY, primary_key=True),
    Column("granted_at_ms", BigInteger, nullable=False),
)

citizen_context = Table(
    "citizen_context", metadata,

    Column("user_id", KEY, primary_key=True),
    Column("dossier_code", KEY, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

rating_prompts = Table(
    "rating_prompts", metadata,
    Column("dossier_code", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("idempotency_key", KEY),
    Column("message_id", KEY),
    Column("sent_at_ms", BigInteger, nullable=False),
)

ratings = Table(
    "satisfaction_ratings", metadata,
    Column("dossier_code", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("score", Integer, nullable=False),
    Column("rated_at_ms", BigInteger, nullable=False),
)

feedback = Table(
    "feedback", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("user_id", KEY, nullable=False),
    Column("dossier_code", KEY),
    Column("text", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("user_id", KEY, primary_key=True),
    Column("topic", String(20), primary_key=True),
    Column("subscribed_at_ms", BigInteger, nullable=False),
)

broadcasts = Table(
    "broadcasts", metadata,
    Column("id", KEY, primary_key=True),
    Column("topic", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

broadcast_sends = Table(
    "broadcast_sends", metadata,
    Column("broadcast_id", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("result", String(20), nullable=False),
    Column("message_id", KEY),
    Column("at_ms", BigInteger, nullable=False),
)
