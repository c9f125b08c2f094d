"""A slot lost while the connector was away (debezium.md §4, problems 3 and 4).

Debezium's users hit both: a failover to a standby without the logical slot, or a slot
invalidated by `max_slot_wal_keep_size`. A connector that simply creates a new slot
starts at the server's current position, and every change made in between is silently
missing from Kafka. This one notices (the offsets topic says a snapshot was completed
under that slot name), logs an error and snapshots again: the rows are published as
reads (`op: "r"`) instead of being lost.
"""

from __future__ import annotations

import logging

import pytest

from capture_support import insert_dossier
from waiting import wait_for

pytestmark = pytest.mark.services


def _codes(records, op: str) -> set[str]:
    return {r.value["after"]["code"] for r in records if r.value and r.value["op"] == op}


def _stream_one_row_and_stop(capture_db, start_capture, topic) -> None:
    capture = start_capture(capture_db.settings())
    wait_for(lambda: capture.alive() and capture_db.confirmed_flush() is not None, message="slot created")
    conn = capture_db.connect()
    insert_dossier(conn, "BEFORE-LOSS")
    conn.close()
    topic.wait(lambda r: "BEFORE-LOSS" in _codes(r, "c"), message="the row streamed")
    capture.stop()


def test_a_slot_missing_after_failover_is_recreated_with_a_new_snapshot(
        capture_db, start_capture, reader, caplog) -> None:
    topic = reader()
    _stream_one_row_and_stop(capture_db, start_capture, topic)
    capture_db.execute("SELECT pg_drop_replication_slot(%s)", (capture_db.name,))  # the standby has none
    conn = capture_db.connect()
    insert_dossier(conn, "WHILE-NO-SLOT")  # no slot holds this change for anyone
    conn.close()

    caplog.set_level(logging.ERROR, logger="onestop.capture")
    capture = start_capture(capture_db.settings())
    records = topic.wait(lambda r: {"BEFORE-LOSS", "WHILE-NO-SLOT"} <= _codes(r, "r"),
                         timeout=60, message="both rows re-published by a new snapshot")
    assert any(f"slot {capture_db.name} is gone" in r.getMessage() for r in caplog.records)
    conn = capture_db.connect()
    insert_dossier(conn, "AFTER-NEW-SLOT")
    conn.close()
    topic.wait(lambda r: "AFTER-NEW-SLOT" in _codes(r, "c"), message="streaming resumed on the new slot")
    assert _codes(records, "c") >= {"BEFORE-LOSS"}
    capture.stop()


def test_a_slot_invalidated_by_max_slot_wal_keep_size_is_recreated_with_a_new_snapshot(
        pg, capture_db, start_capture, reader, caplog) -> None:
    topic = reader()
    _stream_one_row_and_stop(capture_db, start_capture, topic)
    admin = pg.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
            cur.execute("SELECT pg_reload_conf()")
        conn = capture_db.connect()
        insert_dossier(conn, "WHILE-INVALIDATED")
        capture_db.execute("CREATE TABLE filler (payload text)")
        for _ in range(3):  # past the slot's WAL allowance: checkpoints remove its segments
            capture_db.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)")
            capture_db.execute("SELECT pg_switch_wal()")
            capture_db.execute("CHECKPOINT")
        conn.close()
        wait_for(lambda: capture_db.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                                            (capture_db.name,))[0][0] == "lost",
                 timeout=30, message="slot invalidated")
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()

    caplog.set_level(logging.ERROR, logger="onestop.capture")
    capture = start_capture(capture_db.settings())
    topic.wait(lambda r: {"BEFORE-LOSS", "WHILE-INVALIDATED"} <= _codes(r, "r"),
               timeout=60, message="both rows re-published by a new snapshot")
    assert any("was invalidated" in r.getMessage() for r in caplog.records)
    state = capture_db.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                               (capture_db.name,))
    assert state and state[0][0] != "lost"
    capture.stop()
