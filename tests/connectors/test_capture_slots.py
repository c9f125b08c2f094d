"""A slot lost or re-created behind the connector's back (debezium.md §4, problems 3 and 4).

Debezium's users hit both: a failover to a standby without the logical slot, or a slot
invalidated by `max_slot_wal_keep_size`. A connector that simply creates a new slot
starts at the server's current position, and every change made in between is silently
missing from Kafka. This one notices (the offsets topic says a snapshot was completed
under that slot name), logs an error and snapshots again: the rows are published as
reads (`op: "r"`) instead of being lost.

A slot re-created under the same name (by hand, or by Patroni's permanent slots at a
failover) is the quieter variant: it exists, so nothing looks wrong. The connector never
confirms its slot past a bound it first wrote to `<prefix>.offsets`; a slot found ahead
of that bound was moved by someone else.
"""

from __future__ import annotations

import logging

import pytest

from capture_support import insert_dossier
from connectors.delivery import producer_config
from connectors.offsets import OffsetStore
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
    _wait_released(capture_db)  # its walsender exits moments after the connection closes


def _wait_released(capture_db) -> None:
    wait_for(lambda: capture_db.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                        (capture_db.name,)) == [(False,)], message="slot released")


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


def _recreate_slot(capture_db) -> None:
    """What Patroni's permanent slots do at a failover on PostgreSQL ≤ 16, or an operator by
    hand: the slot comes back under its name, at the server's position of that moment."""
    _wait_released(capture_db)
    capture_db.execute("SELECT pg_drop_replication_slot(%s)", (capture_db.name,))
    conn = capture_db.connect()
    insert_dossier(conn, "WHILE-RECREATED")  # before the new slot: it will never stream this
    conn.close()
    capture_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (capture_db.name,))


def _assert_noticed_and_snapshotted_again(capture_db, topic, caplog) -> None:
    topic.wait(lambda r: "WHILE-RECREATED" in _codes(r, "r"), timeout=60,
               message="the skipped row published by a new snapshot")
    assert any(f"replication slot {capture_db.name} is at" in r.getMessage()
               and "re-created" in r.getMessage() for r in caplog.records)
    conn = capture_db.connect()
    insert_dossier(conn, "AFTER-RECREATED")
    conn.close()
    topic.wait(lambda r: "AFTER-RECREATED" in _codes(r, "c"), message="streaming resumed")


def test_a_slot_recreated_while_the_connector_was_away_is_noticed(
        capture_db, start_capture, reader, caplog) -> None:
    """Without the bound the connector would stream from the new slot: WHILE-RECREATED
    would be missing from Kafka, and nothing would say so."""
    topic = reader()
    _stream_one_row_and_stop(capture_db, start_capture, topic)
    _recreate_slot(capture_db)
    caplog.set_level(logging.ERROR, logger="onestop.capture")
    capture = start_capture(capture_db.settings())
    _assert_noticed_and_snapshotted_again(capture_db, topic, caplog)
    capture.stop()


def test_a_slot_recreated_at_a_failover_while_streaming_is_noticed(
        capture_db, start_capture, reader, caplog) -> None:
    """The connector keeps running: its session ends, and the next one finds the new slot."""
    topic = reader()
    capture = start_capture(capture_db.settings())
    capture.runner._jitter = lambda _attempt: 8.0  # room to re-create the slot before it reconnects
    wait_for(lambda: capture.alive() and capture_db.confirmed_flush() is not None, message="slot created")
    conn = capture_db.connect()
    insert_dossier(conn, "BEFORE-FAILOVER")
    conn.close()
    topic.wait(lambda r: "BEFORE-FAILOVER" in _codes(r, "c"), message="the row streamed")
    caplog.set_level(logging.ERROR, logger="onestop.capture")
    capture_db.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                       "WHERE slot_name = %s", (capture_db.name,))
    _recreate_slot(capture_db)
    _assert_noticed_and_snapshotted_again(capture_db, topic, caplog)
    capture.stop()


def test_a_plain_restart_keeps_streaming_without_a_new_snapshot(
        capture_db, start_capture, reader, caplog, broker) -> None:
    """The bound is never behind the slot, so an ordinary restart is not taken for a
    re-created slot (which would re-send every row)."""
    topic = reader()
    _stream_one_row_and_stop(capture_db, start_capture, topic)
    kafka = capture_db.settings().kafka
    record = OffsetStore(kafka, producer_config(kafka), capture_db.name).load()
    assert record is not None and record["confirm_limit"] >= capture_db.confirmed_flush()
    caplog.set_level(logging.WARNING, logger="onestop.capture")
    capture = start_capture(capture_db.settings())
    conn = capture_db.connect()
    insert_dossier(conn, "AFTER-RESTART")
    conn.close()
    records = topic.wait(lambda r: "AFTER-RESTART" in _codes(r, "c"), message="streaming resumed")
    capture.stop()
    assert _codes(records, "r") == set()  # BEFORE-LOSS was inserted after the first snapshot
    # The connector's own loggers: clients of earlier tests may still log about the broker.
    assert not [r for r in caplog.records if r.name.startswith("onestop.capture")
                and r.levelno >= logging.WARNING], caplog.records
