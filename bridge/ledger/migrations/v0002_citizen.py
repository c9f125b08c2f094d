"""The citizen side of the OA (bridge/citizen): webhook inbox, delivery receipts, lookups,
ratings, feedback, subscriptions and broadcasts; plus lookup indexes on `notifications`.

Query-side shapes live in ``bridge/citizen/tables.py`` (tests/citizen compare both).
Times are epoch milliseconds (UTC).
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Connection, Index, Integer, MetaData, String, Table,
                        Text)

from bridge.ledger.migrations import AutoId, create_index

KEY = String(255)


def upgrade(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "webhook_inbox", meta,
        Column("seq", AutoId, primary_key=True, autoincrement=True),   # arrival order
        Column("event_key", KEY, nullable=False, unique=True),        # dedupe of Zalo retries
        Column("event_name", String(64), nullable=False),
        Column("user_key", KEY, nullable=False),                      # per-user ordering
        Column("body", Text, nullable=False),
        Column("signature_variant", String(32), nullable=False),
        Column("received_at_ms", BigInteger, nullable=False),
        Column("status", String(12), nullable=False),                 # new|done|failed
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("error", Text),
        Column("processed_at_ms", BigInteger),
        Index("webhook_inbox_status", "status", "seq"),
    )
    Table(
        "delivery_receipts", meta,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("event_key", KEY, nullable=False, unique=True),
        Column("channel", String(20), nullable=False),
        Column("msg_id", KEY),
        Column("tracking_id", KEY),
        Column("idempotency_key", KEY),                               # matched notification
        Column("delivered_at_ms", BigInteger, nullable=False),
        Column("received_at_ms", BigInteger, nullable=False),
        Index("delivery_receipts_msg", "msg_id"),
        Index("delivery_receipts_key", "idempotency_key"),
    )
    Table(
        "oa_outbox", meta,                                            # the OA's own replies
        Column("message_id", KEY, primary_key=True),
        Column("user_id", KEY, nullable=False),
        Column("purpose", String(40), nullable=False),
        Column("sent_at_ms", BigInteger, nullable=False),
        Column("delivered_at_ms", BigInteger),
    )
    Table(
        "lookup_challenges", meta,
        Column("user_id", KEY, primary_key=True),
        Column("codes", Text, nullable=False),                        # JSON list
        Column("created_at_ms", BigInteger, nullable=False),
    )
    Table(
        "lookup_failures", meta,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("user_id", KEY, nullable=False),
        Column("reason", String(20), nullable=False),
        Column("at_ms", BigInteger, nullable=False),
        Index("lookup_failures_user", "user_id", "at_ms"),
    )
    Table(
        "lookup_grants", meta,
        Column("user_id", KEY, primary_key=True),
        Column("dossier_code", KEY, primary_key=True),
        Column("granted_at_ms", BigInteger, nullable=False),
    )
    Table(
        "citizen_context", meta,                                      # last dossier talked about
        Column("user_id", KEY, primary_key=True),
        Column("dossier_code", KEY, nullable=False),
        Column("updated_at_ms", BigInteger, nullable=False),
    )
    Table(
        "rating_prompts", meta,
        Column("dossier_code", KEY, primary_key=True),
        Column("user_id", KEY, primary_key=True),
        Column("idempotency_key", KEY),
        Column("message_id", KEY),
        Column("sent_at_ms", BigInteger, nullable=False),
    )
    Table(
        "satisfaction_ratings", meta,
        Column("dossier_code", KEY, primary_key=True),
        Column("user_id", KEY, primary_key=True),
        Column("score", Integer, nullable=False),
        Column("rated_at_ms", BigInteger, nullable=False),
        Index("satisfaction_ratings_rated_at", "rated_at_ms"),
    )
    Table(
        "feedback", meta,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("user_id", KEY, nullable=False),
        Column("dossier_code", KEY),
        Column("text", Text, nullable=False),
        Column("at_ms", BigInteger, nullable=False),
        Index("feedback_at", "at_ms"),
    )
    Table(
        "subscriptions", meta,
        Column("user_id", KEY, primary_key=True),
        Column("topic", String(20), primary_key=True),
        Column("subscribed_at_ms", BigInteger, nullable=False),
        Index("subscriptions_topic", "topic"),
    )
    Table(
        "broadcasts", meta,
        Column("id", KEY, primary_key=True),                          # hash of topic+text+day
        Column("topic", String(20), nullable=False),
        Column("text", Text, nullable=False),
        Column("created_at_ms", BigInteger, nullable=False),
    )
    Table(
        "broadcast_sends", meta,
        Column("broadcast_id", KEY, primary_key=True),
        Column("user_id", KEY, primary_key=True),
        Column("result", String(20), nullable=False),                 # sent|failed:<code>
        Column("message_id", KEY),
        Column("at_ms", BigInteger, nullable=False),
    )
    meta.create_all(conn)
    # The lookup and receipt paths find notifications by phone, code and provider id.
    ledger = MetaData()
    notifications = Table("notifications", ledger, Column("phone", String(20)),
                          Column("dossier_code", KEY), Column("provider_message_id", KEY))
    create_index(conn, Index("notifications_phone", notifications.c.phone))
    create_index(conn, Index("notifications_dossier_code", notifications.c.dossier_code))
    create_index(conn, Index("notifications_provider_message",
                             notifications.c.provider_message_id))
