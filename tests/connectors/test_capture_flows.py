"""Log-based capture against the real PostgreSQL and broker: what lands in Kafka per change."""

from __future__ import annotations

import base64
import io
import os
import re
import threading
from decimal import Decimal

import pytest

from bridge.decode.envelope import decode_value
from bridge.errors import ConfigError
from bridge.model import UNAVAILABLE
from capture_support import connect_valid, insert_dossier
from events import present
from connectors.capture import PgCapture
from connectors.pgcatalog import quote_name
from waiting import wait_for

pytestmark = pytest.mark.services


def test_insert_update_delete_become_debezium_records(capture_db, start_capture, reader) -> None:
    conn = capture_db.connect()
    capture = start_capture(capture_db.settings())
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None,
               message="slot created")
    dossier = insert_dossier(conn, "000.00.23.H39-240612-0001", status=1,
                             received_at="2024-06-12 08:30:00+07", fee_amount=Decimal("150000.50"))
    big_note = "".join(base64.b64encode(bytes([i % 251, i % 241, i % 239])).decode() for i in range(6000))
    with conn.cursor() as cur:
        cur.execute("UPDATE dossiers SET status = 2, note = %s WHERE id = %s", (big_note, dossier))
        cur.execute("UPDATE dossiers SET status = 5 WHERE id = %s", (dossier,))  # note is TOASTed, unchanged
        cur.execute("SELECT pg_logical_emit_message(true, 'onestop', 'xin chào')")
        cur.execute("DELETE FROM dossiers WHERE id = %s", (dossier,))
    records = topic.wait(lambda r: len(r) >= 5, message="c, u, u, d, tombstone")
    assert [r.key for r in records] == [{"id": dossier}] * 5
    created, received, supplement, deleted, tombstone = (r.value for r in records)
    assert [created["op"], received["op"], supplement["op"], deleted["op"]] == ["c", "u", "u", "d"]
    assert tombstone is None

    after = created["after"]
    assert after["received_at"] == "2024-06-12T01:30:00Z"
    assert after["fee_amount"] == base64.b64encode((15000050).to_bytes(4, "big")).decode()
    assert after["applicant_name"] == "Nguyễn Văn An" and after["status"] == 1
    source = created["source"]
    assert source["connector"] == "postgresql" and source["name"] == capture_db.name
    assert (source["db"], source["schema"], source["table"]) == (capture_db.name, "public", "dossiers")
    assert source["snapshot"] == "false" and isinstance(source["lsn"], int) and source["txId"] > 0
    assert abs(created["ts_ms"] - source["ts_ms"]) < 10_000

    assert received["after"]["note"] == big_note
    assert supplement["after"]["note"] == "__debezium_unavailable_value"
    assert deleted["before"] == {"id": dossier} and deleted["after"] is None

    event = present(decode_value(supplement))
    after = present(event.after)
    assert event.op == "u" and after["status"] == 5 and after["note"] is UNAVAILABLE
    messages = reader(f"{capture_db.name}.message").wait(lambda r: len(r) >= 1, message="message event")
    assert messages[0].value["op"] == "m" and messages[0].key == {"prefix": "onestop"}
    assert base64.b64decode(messages[0].value["message"]["content"]).decode() == "xin chào"
    conn.close()
    capture.stop()


def test_schema_envelope_when_schemas_enabled(capture_db, start_capture, reader) -> None:
    conn = capture_db.connect()
    capture = start_capture(capture_db.settings(schemas_enable=True))
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    insert_dossier(conn, "S-1", status=6, due_at="2024-06-20 17:00:00+07", fee_amount=Decimal("-3.05"))
    (record,) = topic.wait(lambda r: len(r) >= 1, message="one record")
    schema = record.value["schema"]
    assert schema["name"] == f"{capture_db.name}.public.dossiers.Envelope"
    fields = {f["field"]: f for f in next(f for f in schema["fields"] if f["field"] == "after")["fields"]}
    assert fields["due_at"]["name"] == "io.debezium.time.ZonedTimestamp"
    assert fields["fee_amount"]["name"] == "org.apache.kafka.connect.data.Decimal"
    assert fields["fee_amount"]["parameters"]["scale"] == "2"
    assert fields["id"] == {"type": "int64", "optional": False, "field": "id"}
    assert fields["note"]["optional"] is True and fields["code"]["optional"] is False
    assert record.key["schema"]["name"] == f"{capture_db.name}.public.dossiers.Key"
    after = present(present(decode_value(record.value)).after)
    assert after["fee_amount"] == Decimal("-3.05")
    assert after["due_at"].isoformat() == "2024-06-20T10:00:00+00:00"
    assert connect_valid(record.value) == [] and connect_valid(record.key) == []
    with conn.cursor() as cur:  # REPLICA IDENTITY DEFAULT: the old row's key only
        cur.execute("DELETE FROM dossiers WHERE code = 'S-1'")
    deleted = topic.wait(lambda r: len(r) >= 3, message="delete and tombstone")[1]
    before = deleted.value["payload"]["before"]
    assert connect_valid(deleted.value) == [], before  # JsonConverter would refuse it otherwise
    assert (before["id"], before["code"], before["status"], before["note"]) == (after["id"], "", 0, None)
    with conn.cursor() as cur:  # a logical decoding message: its own schemas (MessageKey/Value)
        cur.execute("SELECT pg_logical_emit_message(true, 'onestop', 'xin chào')")
    (message,) = reader(f"{capture_db.name}.message").wait(lambda r: len(r) >= 1, message="message")
    assert message.value["schema"]["name"] == "io.debezium.connector.postgresql.MessageValue"
    assert message.key["schema"]["name"] == "io.debezium.connector.postgresql.MessageKey"
    assert connect_valid(message.value) == [] and connect_valid(message.key) == []
    assert message.value["payload"]["message"]["prefix"] == "onestop"
    conn.close()
    capture.stop()


def test_rows_sharing_one_lsn_and_a_large_transaction(capture_db, start_capture, reader) -> None:
    """COPY writes multi-insert WAL records (rows share an LSN); 20,000 rows in one transaction."""
    capture = start_capture(capture_db.settings())
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    conn = capture_db.connect()
    conn.autocommit = False
    lines = "".join(f"COPY-{i}\t1.1\tThủ tục\tUBND\tTrần Thị B\t1\n" for i in range(20000))
    with conn.cursor() as cur:
        cur.copy_from(io.StringIO(lines), "dossiers", columns=(
            "code", "procedure_code", "procedure_name", "agency_name", "applicant_name", "status"))
    conn.commit()
    records = topic.wait(lambda r: len(r) >= 20000, timeout=60, message="20,000 rows")
    codes = {r.value["after"]["code"] for r in records}
    assert len(records) == 20000 and len(codes) == 20000
    lsns = [r.value["source"]["lsn"] for r in records]
    assert len(set(lsns)) < len(lsns), "COPY rows should share LSNs"
    assert len({r.value["source"]["txId"] for r in records}) == 1
    conn.close()
    capture.stop()


def test_add_column_mid_stream_appears_in_after(capture_db, start_capture, reader) -> None:
    conn = capture_db.connect()
    capture = start_capture(capture_db.settings())
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    insert_dossier(conn, "A-1")
    topic.wait(lambda r: len(r) >= 1, message="first row")
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE dossiers ADD COLUMN channel TEXT DEFAULT 'quầy'")
    insert_dossier(conn, "A-2", channel="zalo")
    records = topic.wait(lambda r: len(r) >= 2, message="row after ALTER")
    assert "channel" not in records[0].value["after"]
    assert records[1].value["after"]["channel"] == "zalo"
    conn.close()
    capture.stop()


def test_drop_column_and_a_primary_key_change_mid_stream(capture_db, start_capture, reader) -> None:
    """debezium.md §4 problem 9 (no DDL in pgoutput: the next Relation message tells) and
    §1.4 (a key change is a delete of the old key and a create of the new, with headers)."""
    conn = capture_db.connect()
    capture = start_capture(capture_db.settings())
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    old = insert_dossier(conn, "K-1", note="Bổ sung bản sao CCCD")
    topic.wait(lambda r: len(r) >= 1, message="first row")
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE dossiers DROP COLUMN note")
        cur.execute("UPDATE dossiers SET id = %s, status = 2 WHERE id = %s", (old + 1000, old))
    records = topic.wait(lambda r: len(r) >= 4, message="delete, tombstone, create")
    by_key: dict[int, list] = {}
    for r in records:
        by_key.setdefault(r.key["id"], []).append(r)
    created, deleted, tombstone = by_key[old]  # one key: one partition, in order
    assert (created.value["op"], created.value["after"]["note"]) == ("c", "Bổ sung bản sao CCCD")
    assert deleted.value["op"] == "d" and deleted.value["before"] == {"id": old}
    assert tombstone.value is None
    new_key = f'{{"id":{old + 1000}}}'.encode()
    assert deleted.headers == tombstone.headers == {"__debezium.newkey": new_key}
    [moved] = by_key[old + 1000]
    assert moved.value["op"] == "c" and moved.value["after"]["id"] == old + 1000
    assert moved.value["after"]["status"] == 2 and "note" not in moved.value["after"]
    assert moved.headers == {"__debezium.oldkey": f'{{"id":{old}}}'.encode()}
    assert created.headers == {}
    conn.close()
    capture.stop()


def test_table_without_primary_key_is_a_clear_startup_error(capture_db) -> None:
    capture_db.execute("CREATE TABLE history (dossier_id bigint, status smallint)")
    capture = PgCapture(capture_db.settings(tables=["public.history"]), threading.Event())
    with pytest.raises(ConfigError) as err:
        capture.run()
    assert "public.history has no primary key" in str(err.value)
    assert "ALTER TABLE public.history REPLICA IDENTITY FULL" in str(err.value)
    assert capture_db.execute("SELECT count(*) FROM pg_publication")[0][0] == 0


def test_table_without_primary_key_under_replica_identity_full_streams_whole_rows(
        capture_db, start_capture, reader) -> None:
    """debezium.md §4 problem 10: the guidance works — null keys, a `before` with every
    column for updates and deletes, and no tombstone (there is no key to compact)."""
    capture_db.execute("CREATE TABLE history (dossier_id bigint, status smallint, note text); "
                       "ALTER TABLE history REPLICA IDENTITY FULL")
    capture = start_capture(capture_db.settings(tables=["public.history"]))
    topic = reader(f"{capture_db.name}.public.history")
    wait_for(lambda: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    capture_db.execute("INSERT INTO history VALUES (7, 1, 'tiếp nhận')")
    capture_db.execute("UPDATE history SET status = 2 WHERE dossier_id = 7")
    capture_db.execute("DELETE FROM history WHERE dossier_id = 7")
    records = topic.wait(lambda r: len(r) >= 3, message="c, u, d")
    assert [r.key for r in records] == [None, None, None]
    # Without a key the partitioner spreads the rows: their order is the source's, by LSN.
    created, updated, deleted = sorted((r.value for r in records), key=lambda v: v["source"]["lsn"])
    assert [created["op"], updated["op"], deleted["op"]] == ["c", "u", "d"]
    assert updated["before"] == {"dossier_id": 7, "status": 1, "note": "tiếp nhận"}
    assert updated["after"] == {"dossier_id": 7, "status": 2, "note": "tiếp nhận"}
    assert deleted["before"] == {"dossier_id": 7, "status": 2, "note": "tiếp nhận"}
    wait_for(lambda: not topic.poll() and capture.alive(), timeout=5, message="quiet")
    assert len(topic.records) == 3  # no tombstone after the delete
    capture.stop()


def test_enums_and_domains_are_typed_as_debezium_types_them(capture_db, start_capture, reader) -> None:
    """debezium.md §1.6: an enum is `io.debezium.data.Enum` with its labels in sort order; a
    domain, even over another domain, is its base type — in the snapshot and in the stream."""
    capture_db.execute(
        "CREATE TYPE channel AS ENUM ('zns', 'oa'); ALTER TYPE channel ADD VALUE 'sms' BEFORE 'oa'; "
        "CREATE DOMAIN amount AS numeric(12,2) CHECK (VALUE >= 0); CREATE DOMAIN fee AS amount; "
        "CREATE TABLE notices (id int PRIMARY KEY, channel channel NOT NULL, cost fee, price amount); "
        "INSERT INTO notices VALUES (1, 'zns', 0, 350.5)")
    capture = start_capture(capture_db.settings(tables=["public.notices"], schemas_enable=True))
    topic = reader(f"{capture_db.name}.public.notices")
    topic.wait(lambda r: len(r) >= 1, message="the snapshot's row")
    capture_db.execute("INSERT INTO notices VALUES (2, 'sms', 350, 350)")
    snapshot, streamed = (r.value for r in topic.wait(lambda r: len(r) >= 2, message="streamed row"))
    assert (snapshot["payload"]["op"], streamed["payload"]["op"]) == ("r", "c")
    for record in (snapshot, streamed):
        after = next(f for f in record["schema"]["fields"] if f["field"] == "after")
        fields = {f["field"]: f for f in after["fields"]}
        assert fields["channel"] == {"type": "string", "optional": False, "name": "io.debezium.data.Enum",
                                     "version": 1, "parameters": {"allowed": "zns,sms,oa"},
                                     "field": "channel"}
        for column in ("cost", "price"):
            assert fields[column]["name"] == "org.apache.kafka.connect.data.Decimal"
            assert fields[column]["parameters"] == {"scale": "2", "connect.decimal.precision": "12"}
        assert connect_valid(record) == []
    rows = [present(present(decode_value(r)).after) for r in (snapshot, streamed)]
    assert [(r["channel"], r["cost"], r["price"]) for r in rows] == [
        ("zns", Decimal("0.00"), Decimal("350.50")), ("sms", Decimal("350.00"), Decimal("350.00"))]
    capture.stop()


def test_an_unchanged_toasted_bytea_is_the_placeholders_bytes(capture_db, start_capture, reader) -> None:
    """debezium.md §1.6: Debezium gives a binary column the placeholder's bytes — base64 under
    JsonConverter, which a Kafka Connect sink decodes; the placeholder's text would not decode."""
    scan = os.urandom(20_000)  # incompressible: stored out of line
    capture_db.execute("CREATE TABLE attachments (id int PRIMARY KEY, status smallint, scan bytea)")
    capture = start_capture(capture_db.settings(tables=["public.attachments"], schemas_enable=True))
    topic = reader(f"{capture_db.name}.public.attachments")
    wait_for(lambda: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    conn = capture_db.connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO attachments VALUES (1, 1, %s)", (scan,))
        cur.execute("UPDATE attachments SET status = 2 WHERE id = 1")
    conn.close()
    created, updated = (r.value for r in topic.wait(lambda r: len(r) >= 2, message="c, u"))
    assert base64.b64decode(created["payload"]["after"]["scan"]) == scan
    assert base64.b64decode(updated["payload"]["after"]["scan"], validate=True) == b"__debezium_unavailable_value"
    assert connect_valid(updated) == []
    after = present(present(decode_value(updated)).after)
    assert after["status"] == 2 and after["scan"] is UNAVAILABLE
    capture.stop()


def test_existing_publication_missing_a_table_says_what_to_run(capture_db) -> None:
    capture_db.execute(f'CREATE TABLE other (id int PRIMARY KEY); CREATE PUBLICATION "{capture_db.name}" FOR TABLE other')
    with pytest.raises(ConfigError, match=f"ALTER PUBLICATION {capture_db.name} ADD TABLE public.dossiers"):
        PgCapture(capture_db.settings(), threading.Event()).run()



def test_statements_to_run_work_when_pasted_for_another_schema_and_capitals(capture_db) -> None:
    """A table in another schema needs USAGE on the schema besides SELECT (without it, capture
    failed with a traceback, exit 1, after part of a snapshot); a name with capitals is quoted
    in each statement, as psql needs it. Each statement printed is run as printed."""
    capture_db.execute('CREATE SCHEMA hs; CREATE TABLE hs."HoSo" (id int PRIMARY KEY)')

    def told(dsn: str) -> str:
        with pytest.raises(ConfigError) as err:
            PgCapture(capture_db.settings(dsn=dsn, tables=["public.dossiers", 'hs."HoSo"']),
                      threading.Event()).run()
        return str(err.value).partition("must run: ")[2]

    with capture_db.least_privilege_role() as dsn:
        role = quote_name(f"cap_{capture_db.name}"[:63])
        assert told(dsn) == f'GRANT USAGE ON SCHEMA hs TO {role}; GRANT SELECT ON hs."HoSo" TO {role};'
        capture_db.execute(told(dsn))
        statement = told(dsn)
        assert statement == f'CREATE PUBLICATION {capture_db.name} FOR TABLE public.dossiers, hs."HoSo";'
        capture_db.execute(statement)
        capture_db.execute(f'ALTER PUBLICATION "{capture_db.name}" DROP TABLE hs."HoSo"')
        statement = told(dsn)
        assert statement == f'ALTER PUBLICATION {capture_db.name} ADD TABLE hs."HoSo";'
        capture_db.execute(statement)
        assert capture_db.execute("SELECT count(*) FROM pg_publication_tables WHERE tablename = 'HoSo'") == [(1,)]


def test_a_heartbeat_table_that_is_missing_or_not_writable_is_a_clear_startup_error(capture_db) -> None:
    """It used to be a multi-line warning on every heartbeat that never said what to run."""
    settings = capture_db.settings(heartbeat_table="public.onestop_heartbeat")
    with pytest.raises(ConfigError, match=r"heartbeat table public.onestop_heartbeat "
                                          r"\(source.heartbeat_table\) does not exist.*CREATE TABLE"):
        PgCapture(settings, threading.Event()).run()
    capture_db.execute("CREATE TABLE onestop_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)")
    with capture_db.least_privilege_role() as dsn:
        role = quote_name(f"cap_{capture_db.name}"[:63])
        with pytest.raises(ConfigError, match=re.escape(
                f"must run: GRANT SELECT, INSERT, UPDATE ON public.onestop_heartbeat TO {role};")):
            PgCapture(capture_db.settings(dsn=dsn, heartbeat_table="public.onestop_heartbeat"),
                      threading.Event()).run()


def test_least_privilege_role_is_told_what_to_run_then_streams(capture_db, start_capture, reader) -> None:
    """A role with only REPLICATION + SELECT: no publication → the exact statement to run;
    once an administrator created it, capture works with nothing more."""
    with capture_db.least_privilege_role() as dsn:
        with pytest.raises(ConfigError, match=f"An administrator must run: CREATE PUBLICATION "
                                              f"{capture_db.name} FOR TABLE public.dossiers;"):
            PgCapture(capture_db.settings(dsn=dsn), threading.Event()).run()
        capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers')
        capture = start_capture(capture_db.settings(dsn=dsn))
        topic = reader()
        topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
        conn = capture_db.connect()
        insert_dossier(conn, "LEAST-PRIVILEGE")
        conn.close()
        (record,) = topic.wait(lambda r: len(r) >= 1, message="record")
        assert record.value["after"]["code"] == "LEAST-PRIVILEGE"
        capture.stop()


def test_a_lone_change_is_not_held_for_linger_ms(capture_db, start_capture, reader) -> None:
    """linger.ms batches a backlog; once the connector has read all the server sent, what
    waits goes out at once: the record and the slot's confirmation come in seconds, not
    after the 20 s a producer lingering that long would hold them."""
    settings = capture_db.settings()
    settings.kafka.extra.update({"linger.ms": 20000})
    capture = start_capture(settings)
    topic = reader()
    topic.wait(lambda _r: capture.alive() and capture_db.confirmed_flush() is not None, message="slot")
    conn = capture_db.connect()
    insert_dossier(conn, "LONE-CHANGE")
    (written,) = capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0]
    conn.close()
    (record,) = topic.wait(lambda r: len(r) >= 1, timeout=10, message="record within 10 s")
    assert record.value["after"]["code"] == "LONE-CHANGE"
    wait_for(lambda: (capture_db.confirmed_flush() or 0) >= written, timeout=10,
             message="slot confirmed past the change within 10 s")
    capture.stop()


PUBLISHED = ("id", "code", "procedure_code", "procedure_name", "agency_name", "status",
             "received_at", "due_at", "finished_at", "fee_amount", "updated_at")


def test_a_publication_column_list_keeps_columns_out_of_snapshot_and_stream(
        capture_db, start_capture, reader) -> None:
    """PostgreSQL 15+: `FOR TABLE t (a, b)` leaves the applicant's name, phone and the note
    out of Kafka — in the snapshot too, which reads the table itself, not the stream."""
    conn = capture_db.connect()
    insert_dossier(conn, "BEFORE", note="ghi chú nội bộ")
    capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers ({", ".join(PUBLISHED)})')
    capture = start_capture(capture_db.settings(schemas_enable=True))
    topic = reader()
    topic.wait(lambda r: len(r) >= 1 and capture.alive(), message="the snapshot's row")
    insert_dossier(conn, "AFTER", note="ghi chú nội bộ")
    records = topic.wait(lambda r: len(r) >= 2, message="the snapshot's row and the new one")
    conn.close()
    assert sorted((r.value["payload"]["op"], r.value["payload"]["after"]["code"]) for r in records) \
        == [("c", "AFTER"), ("r", "BEFORE")]
    for record in records:
        assert tuple(record.value["payload"]["after"]) == PUBLISHED
        [after_schema] = [f for f in record.value["schema"]["fields"] if f["field"] == "after"]
        assert tuple(f["field"] for f in after_schema["fields"]) == PUBLISHED
        raw = present(record.raw_value)
        assert "ghi chú".encode() not in raw and b"0909123456" not in raw and b"Nguy" not in raw


def test_a_column_list_without_the_primary_key_is_a_clear_startup_error(capture_db) -> None:
    capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers (code, status)')
    with pytest.raises(ConfigError, match=re.escape(
            f"without its primary key (id): its change events would have no key, and PostgreSQL "
            f"refuses every UPDATE and DELETE on the table while this is so. An administrator must "
            f"run: ALTER PUBLICATION {capture_db.name} SET TABLE public.dossiers (id, code, status);")):
        PgCapture(capture_db.settings(), threading.Event()).run()
