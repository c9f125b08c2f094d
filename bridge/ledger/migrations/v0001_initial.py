"""The first ledger schema: events, notifications, delivery attempts, dossier state,
follower links, tokens and the replay audit. Times are epoch milliseconds (UTC)."""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Connection, Float, Index, Integer, MetaData,
                        String, Table, Text)

from bridge.ledger.migrations import AutoId

KEY = String(255)


def upgrade(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "events_seen", meta,
        Column("event_id", KEY, primary_key=True),
        Column("dossier_key", KEY),
        Column("seen_at_ms", BigInteger, nullable=False),
        Index("events_seen_seen_at", "seen_at_ms"),
    )
    Table(
        "dossier_state", meta,
        Column("dossier_key", KEY, primary_key=True),
        Column("state", Text, nullable=False),            # JSON (dossier_to_dict)
        Column("updated_at_ms", BigInteger, nullable=False),
    )
    Table(
        "notifications", meta,
        Column("id", AutoId, primary_key=True, autoincrement=True),  # admission order
        Column("idempotency_key", KEY, nullable=False, unique=True),
        Column("event_id", KEY, nullable=False),
        Column("dossier_key", KEY, nullable=False),
        Column("dossier_code", KEY, nullable=False),
        Column("dossier_id", KEY),
        Column("kind", String(40), nullable=False),
        Column("phone", String(20)),
        Column("text", Text, nullable=False),
        Column("template_data", Text, nullable=False),     # JSON object of strings
        Column("template_version", String(64), nullable=False),
        Column("source_ts_ms", BigInteger),
        Column("status", String(12), nullable=False),      # pending|sent|deferred|failed|dead
        Column("channel", String(20)),
        Column("price_vnd", Integer),
        Column("provider_message_id", String(255)),
        Column("rounds", Integer, nullable=False, server_default="0"),  # retry rounds used
        Column("error_class", String(64)),
        Column("error_message", Text),
        Column("created_at_ms", BigInteger, nullable=False),
        Column("updated_at_ms", BigInteger, nullable=False),
        Index("notifications_event", "event_id"),
        Index("notifications_dossier_status", "dossier_key", "status"),
        Index("notifications_status", "status"),
    )
    Table(
        "delivery_attempts", meta,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("idempotency_key", KEY, nullable=False),
        Column("channel", String(20), nullable=False),
        Column("result", String(20), nullable=False),
        Column("price_vnd", Integer),
        Column("provider_message_id", String(255)),
        Column("error_code", String(40)),
        Column("error_message", Text),
        Column("at_ms", BigInteger, nullable=False),
        Index("delivery_attempts_key", "idempotency_key"),
    )
    Table(
        "follower_links", meta,
        Column("user_id", KEY, primary_key=True),          # Zalo user id (per OA)
        Column("phone", String(20), nullable=False),       # 84XXXXXXXXX
        Column("linked_at_ms", BigInteger, nullable=False),
        Column("updated_at_ms", BigInteger, nullable=False),
        Index("follower_links_phone", "phone"),
    )
    Table(
        "tokens", meta,
        Column("name", String(64), primary_key=True),
        Column("access_token", Text, nullable=False),
        Column("refresh_token", Text, nullable=False),
        Column("expires_at", Float, nullable=False),        # epoch seconds
        Column("updated_at_ms", BigInteger, nullable=False),
    )
    Table(
        "replay_audit", meta,
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
    meta.create_all(conn)
