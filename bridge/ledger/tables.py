"""Today's shape of the ledger tables, for queries (the migrations create them).

Keep in step with ``bridge/ledger/migrations``: when a migration adds a table or a
column, add it here too (a test compares both). Times are epoch milliseconds.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table,
                        Text)

from bridge.ledger.migrations import AutoId

KEY = String(255)
metadata = MetaData()

# Notification statuses. `deferred` (rate limit, quota, night) and `failed` (transient
# errors outlasted the in-process budget) both wait in the retry topic; while a
# dossier has one, its later notifications wait behind it ("parked").
PENDING, SENT, DEFERRED, FAILED, DEAD = "pending", "sent", "deferred", "failed", "dead"
PARKED_STATUSES = (DEFERRED, FAILED)
UNSENT_STATUSES = (PENDING, DEFERRED, FAILED)

events_seen = Table(
    "events_seen", metadata,
    Column("event_id", KEY, primary_key=True),
    Column("dossier_key", KEY),
    Column("seen_at_ms", BigInteger, nullable=False),
)

dossier_state = Table(
    "dossier_state", metadata,
    Column("dossier_key", KEY, primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

notifications = Table(
    "notifications", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("idempotency_key", KEY, nullable=False, unique=True),
    Column("event_id", KEY, nullable=False),
    Column("dossier_key", KEY, nullable=False),
    Column("dossier_code", KEY, nullable=False),
    Column("dossier_id", KEY),
    Column("kind", String(40), nullable=False),
    Column("phone", String(20)),
    Column("text", Text, nullable=False),
    Column("template_data", Text, nullable=False),
    Column("template_version", String(64), nullable=False),
    Column("source_ts_ms", BigInteger),
    Column("status", String(12), nullable=False),
    Column("channel", String(20)),
    Column("price_vnd", Integer),
    Column("provider_message_id", String(255)),
    Column("rounds", Integer, nullable=False, default=0),
    Column("error_class", String(64)),
    Column("error_message", Text),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("sms_equivalent_vnd", Integer),  # a sent notice's cost had it gone by SMS
)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("idempotency_key", KEY, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("result", String(20), nullable=False),
    Column("price_vnd", Integer),
    Column("provider_message_id", String(255)),
    Column("error_code", String(40)),
    Column("error_message", Text),
    Column("at_ms", BigInteger, nullable=False),
)

follower_links = Table(
    "follower_links", metadata,
    Column("user_id", KEY, primary_key=True),
    Column("phone", String(20), nullable=False),
    Column("linked_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("name", String(64), primary_key=True),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

replay_audit = Table(
    "replay_audit", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("dlq_topic", KEY, nullable=False),
    Column("dlq_partition", Integer, nullable=False),
    Column("dlq_offset", BigInteger, nullable=False),
    Column("target_topic", KEY, nullable=False),
    Column("dossier_code", KEY),
    Column("kind", String(40)),
    Column("error_class", String(64)),
    Column("dry_run", Boolean, nullable=False),
    Column("operator", String(255)),
    Column("replayed_at_ms", BigInteger, nullable=False),
)
