"""The SQL polling connector (--mode polling) on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from bridge import metrics
from bridge.decode.envelope import decode_value
from bridge.embedded import EmbeddedBroker, free_port
from bridge.errors import ConfigError
from bridge.pipeline import Pipeline
from bridge.render import render_lines
from bridge.decode.types import decimal_from_base64
from bridge.settings import load_settings
from capture_support import TopicReader, insert_dossier, reconnects
from events import present
from waiting import wait_for

DDL = """CREATE TABLE dossiers (id INTEGER PRIMARY KEY, code TEXT NOT NULL, status SMALLINT NOT NULL,
         fee_amount NUMERIC(14, 2), due_at TIMESTAMP, updated_at TIMESTAMP NOT NULL)"""


def _settings(dsn: str, prefix: str, bootstrap: str, state: str):
    return load_settings(None, source={
        "dsn": dsn, "topic_prefix": prefix, "state_path": state, "poll_interval_s": 0.1,
        "poll_overlap_s": 60, "timezone": "Asia/Ho_Chi_Minh"}, kafka={"bootstrap_servers": bootstrap})


def _codes(records) -> list[tuple[str, str]]:
    return [(r.value["op"], r.value["after"]["code"]) for r in records]


@pytest.mark.services
def test_polling_sqlite_snapshot_changes_late_commits_and_restart(broker, unique_name, tmp_path,
                                                                  start_capture) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}")
    table = sa.Table("dossiers", sa.MetaData(), autoload_with=_create(engine))
    now = datetime.now().replace(microsecond=0)
    rows: list[dict[str, Any]] = [{"id": i, "code": f"SQ-{i}", "status": 2, "fee_amount": Decimal("150000.50"),
             "due_at": now + timedelta(days=7), "updated_at": now - timedelta(minutes=10 - i)} for i in (1, 2, 3)]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                         str(tmp_path / "state.sqlite"))
    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
    capture = start_capture(settings, mode="polling")
    records = topic.wait(lambda r: len(r) >= 3, message="snapshot reads")
    assert _codes(records) == [("r", "SQ-1"), ("r", "SQ-2"), ("r", "SQ-3")]
    assert [r.value["source"]["snapshot"] for r in records] == ["first", "true", "last"]
    first = records[0].value
    assert first["source"]["connector"] == "polling" and records[0].key == {"id": 1}
    assert first["after"]["due_at"] == int((rows[0]["due_at"] - datetime(1970, 1, 1)).total_seconds() * 1e6)
    assert decimal_from_base64(first["after"]["fee_amount"], 2) == Decimal("150000.50")
    assert present(decode_value(first)).op == "r"
    expected_ts = int((rows[0]["updated_at"] - timedelta(hours=7) - datetime(1970, 1, 1)).total_seconds() * 1000)
    assert first["source"]["ts_ms"] == expected_ts  # naive updated_at read in source.timezone

    with engine.begin() as conn:
        conn.execute(table.insert(), {"id": 4, "code": "SQ-4", "status": 1, "updated_at": now})
        conn.execute(table.update().where(table.c.id == 1).values(status=5, updated_at=now))
    topic.wait(lambda r: len(r) >= 5, message="create and update")
    with engine.begin() as conn:  # committed late, stamped before what was already polled
        conn.execute(table.insert(), {"id": 5, "code": "SQ-LATE", "status": 1,
                                      "updated_at": now - timedelta(seconds=30)})
    records = topic.wait(lambda r: len(r) >= 6, message="late commit inside the overlap window")
    assert sorted(_codes(records[3:])) == [("c", "SQ-4"), ("c", "SQ-LATE"), ("u", "SQ-1")]
    capture.stop()

    capture = start_capture(settings, mode="polling")  # restart: state file remembers
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == 2).values(status=9, updated_at=now + timedelta(seconds=1)))
    records = topic.wait(lambda r: len(r) >= 7, message="update after restart")
    assert _codes(records[6:]) == [("u", "SQ-2")] and records[6].value["after"]["status"] == 9
    wait_for(lambda: not topic.poll() and capture.alive(), timeout=5, message="quiet")
    versions = Counter((r.key["id"], r.value["after"]["status"]) for r in topic.records)
    assert max(versions.values()) == 1, f"duplicates: {versions}"
    capture.stop()
    topic.close()


def _create(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL)
    return engine


@pytest.mark.services
def test_polling_postgresql_sees_a_transaction_that_commits_after_a_later_one(
        capture_db, tmp_path, start_capture, reader) -> None:
    conn = capture_db.connect()
    first = insert_dossier(conn, "PG-1", status=2)
    settings = _settings(capture_db.dsn, capture_db.name, capture_db.bootstrap, str(tmp_path / "s.sqlite"))
    capture = start_capture(settings, mode="polling")
    topic = reader()
    topic.wait(lambda r: len(r) >= 1, message="snapshot read")
    slow = capture_db.connect()
    slow.autocommit = False
    with slow.cursor() as cur:  # now() is the transaction start: an early updated_at
        cur.execute("UPDATE dossiers SET status = 4, updated_at = now() WHERE id = %s", (first,))
    insert_dossier(conn, "PG-2", status=1)  # later updated_at, committed first
    topic.wait(lambda r: len(r) >= 2, message="the later row")
    slow.commit()
    records = topic.wait(lambda r: len(r) >= 3, message="the late-committed update")
    assert _codes(records) == [("r", "PG-1"), ("c", "PG-2"), ("u", "PG-1")]
    assert records[2].value["after"]["status"] == 4
    assert records[2].value["after"]["updated_at"].endswith("Z")  # timestamptz → ZonedTimestamp
    slow.close()
    conn.close()
    capture.stop()


@pytest.mark.services
def test_polling_keeps_its_cursor_while_kafka_refuses_and_sends_the_rows_later(
        broker, unique_name, tmp_path, start_capture) -> None:
    engine = _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    now = datetime.now().replace(microsecond=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, updated_at) VALUES "
                             f"(1, 'KD-1', 1, '{now}'), (2, 'KD-2', 1, '{now}')")
    args = (f"sqlite:///{tmp_path / 'onestop.db'}", unique_name)
    state = str(tmp_path / "state.sqlite")
    down = _settings(*args, f"127.0.0.1:{free_port()}", state)
    down.kafka.extra["message.timeout.ms"] = 1500  # records fail fast instead of in 5 min
    refused = reconnects("kafka")
    capture = start_capture(down, mode="polling")
    wait_for(lambda: reconnects("kafka") > refused, timeout=30, message="Kafka's refusal ends the poll")
    capture.stop()

    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
    capture = start_capture(_settings(*args, broker.bootstrap, state), mode="polling")
    records = topic.wait(lambda r: len(r) >= 2, message="the rows Kafka refused, sent again")
    assert sorted(_codes(records)) == [("r", "KD-1"), ("r", "KD-2")]
    capture.stop()
    topic.close()


@pytest.mark.services
def test_polling_recovers_in_place_once_kafka_comes_back(unique_name, tmp_path, start_capture) -> None:
    """The same process, Kafka absent until its records time out, then there: a page
    refused once stayed at the head of the ledger, so every later pass failed too (connected
    0 for good, the cursor never saved, the rows sent again each pass)."""
    engine = _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    now = datetime.now().replace(microsecond=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, updated_at) VALUES "
                             f"(1, 'BACK-1', 1, '{now}'), (2, 'BACK-2', 1, '{now}')")
    broker = EmbeddedBroker()  # its port is free until it starts
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                         str(tmp_path / "state.sqlite"))
    settings.kafka.extra["message.timeout.ms"] = 1500
    refused = reconnects("kafka")
    capture = start_capture(settings, mode="polling")
    wait_for(lambda: reconnects("kafka") > refused, timeout=30, message="Kafka's refusal ends a pass")
    broker.start()
    try:
        wait_for(lambda: capture.alive() and metrics.capture_connected._value.get() == 1,  # noqa: SLF001
                 timeout=60, message="a whole pass once Kafka is there")
        passes = reconnects("kafka")
        topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
        try:
            topic.wait(lambda r: len(r) >= 2, message="the refused rows, sent again")
            wait_for(lambda: metrics.capture_connected._value.get() == 1, timeout=5,  # noqa: SLF001
                     message="still connected")
            assert reconnects("kafka") == passes
            assert sorted(_codes(topic.wait(lambda r: len(r) >= 2))) == [("r", "BACK-1"), ("r", "BACK-2")]
        finally:
            topic.close()
    finally:
        capture.stop()
        broker.stop()


@pytest.mark.services
def test_polling_sqlite_pages_through_rows_stamped_in_one_second(broker, unique_name, tmp_path,
                                                                 start_capture) -> None:
    """CURRENT_TIMESTAMP writes '… 01:00:00', which SQLite orders as text before the
    '… 01:00:00.000000' a bound datetime becomes: a page boundary inside one second of
    rows used to skip the rest of them (1,000 of 1,500 sent), silently. A row carrying an
    offset among naive ones is read too (it once stopped the poll: naive vs aware)."""
    engine = _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO dossiers (id, code, status, updated_at) WITH RECURSIVE g(n) AS "
            "(SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1500) "
            "SELECT n, 'SEC-' || n, 2, '2026-12-07 01:00:00' FROM g")
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, updated_at) "
                             "VALUES (1501, 'SEC-1501', 2, '2026-12-07T08:30:00+07:00')")
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                         str(tmp_path / "state.sqlite"))
    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
    snapshot_rows = metrics.REGISTRY.get_sample_value("onestop_capture_snapshot_rows_total") or 0
    capture = start_capture(settings, mode="polling")
    records = topic.wait(lambda r: len(r) >= 1501, timeout=60, message="every row of the second")
    assert sorted(int(r.value["after"]["code"][4:]) for r in records) == list(range(1, 1502))
    # Polling mode is watched like the log-based one (OnestopConnectorDown, event age).
    wait_for(lambda: metrics.capture_connected._value.get() == 1, message="a whole pass done")  # noqa: SLF001
    assert metrics.REGISTRY.get_sample_value("onestop_capture_snapshot_rows_total") == snapshot_rows + 1501
    assert present(metrics.REGISTRY.get_sample_value("onestop_capture_last_event_age_seconds")) < 30
    capture.stop()
    topic.close()


@pytest.mark.services
def test_a_second_change_within_the_same_second_is_captured(broker, unique_name, tmp_path,
                                                            start_capture) -> None:
    """Second-resolution stamps (SQLite's CURRENT_TIMESTAMP, MySQL DATETIME): a change
    polled, then another in the same second, kept the stamp the connector remembered and
    was never emitted — the citizen's "please add documents" lost for good."""
    engine = _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    stamp = datetime.now().replace(microsecond=0)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, updated_at) "
                             "VALUES (1, 'SAME-1', 2, ?)", (stamp,))
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                         str(tmp_path / "state.sqlite"))
    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
    capture = start_capture(settings, mode="polling")
    topic.wait(lambda r: len(r) >= 1, message="the snapshot read")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE dossiers SET status = 5 WHERE id = 1")
    topic.wait(lambda r: len(r) >= 2, message="the first change")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE dossiers SET status = 4 WHERE id = 1")
    records = topic.wait(lambda r: len(r) >= 3, message="both changes of the second")
    assert [(r.value["op"], r.value["after"]["status"]) for r in records] == [("r", 2), ("u", 5), ("u", 4)]
    wait_for(lambda: not topic.poll() and capture.alive(), timeout=3, message="quiet")
    assert len(topic.records) == 3, "an unchanged row re-read in the overlap is not sent again"
    capture.stop()
    topic.close()


@pytest.mark.services
def test_polling_stops_with_a_configuration_error_when_the_server_refuses_the_login(pg, tmp_path) -> None:
    import threading

    from connectors.polling import PollingCapture

    settings = _settings(pg.url("no_such_database"), "refused", "127.0.0.1:9", str(tmp_path / "s.sqlite"))
    with pytest.raises(ConfigError, match='database "no_such_database" does not exist'):
        PollingCapture(settings, threading.Event()).run()


HISTORY_DDL = [
    """CREATE TABLE dossiers (id INTEGER PRIMARY KEY, code TEXT NOT NULL, procedure_name TEXT,
       agency_name TEXT, applicant_phone TEXT, status SMALLINT NOT NULL, note TEXT,
       received_at TIMESTAMP, due_at TIMESTAMP, updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE dossier_status_history (id INTEGER PRIMARY KEY, dossier_id INTEGER NOT NULL,
       status SMALLINT NOT NULL, note TEXT, changed_at TIMESTAMP NOT NULL)""",
    """CREATE VIEW dossier_transitions AS
       SELECT h.id AS transition_id, d.id, d.code, d.procedure_name, d.agency_name,
              d.applicant_phone, h.status, h.note, d.received_at, d.due_at,
              h.changed_at AS updated_at
         FROM dossier_status_history h JOIN dossiers d ON d.id = h.dossier_id""",
]


@pytest.mark.services
def test_a_status_history_view_delivers_every_transition_once_in_order(
        broker, unique_name, tmp_path, start_capture) -> None:
    """docs/connectors.md, "Closing the gap": transitions faster than the poll interval (two
    in one second) each arrive once, on the dossier's key, and each tells the citizen."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}")
    with engine.begin() as conn:
        for statement in HISTORY_DDL:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(
            "INSERT INTO dossiers VALUES (7, 'H-7', 'Đăng ký khai sinh', 'UBND xã Long Trạch', "
            "'0912345678', 1, NULL, '2026-12-07 08:00:00', '2026-12-10 16:00:00', '2026-12-07 08:00:00')")
        conn.exec_driver_sql("INSERT INTO dossier_status_history VALUES (1, 7, 1, NULL, '2026-12-07 08:00:00')")
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                         str(tmp_path / "state.sqlite"))
    settings.source.tables = ["public.dossier_transitions"]
    settings.source.poll_row_id = "transition_id"
    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossier_transitions")
    capture = start_capture(settings, mode="polling")
    topic.wait(lambda r: len(r) >= 1, message="the snapshot of the history")

    def transition(history_id: int, status: int, at: str, note: str | None = None) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO dossier_status_history VALUES (?, 7, ?, ?, ?)",
                                 (history_id, status, note, at))
            conn.exec_driver_sql("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = 7", (status, at))

    with engine.begin():  # three transitions between two polls, two of them in one second
        transition(2, 2, "2026-12-07 08:05:00")
        transition(3, 5, "2026-12-07 08:05:00", "Bổ sung Giấy chứng sinh")
        transition(4, 4, "2026-12-07 08:30:00")
    topic.wait(lambda r: len(r) >= 4, message="three transitions")
    transition(5, 9, "2026-12-07 09:00:00")  # a later one: earlier ones re-read meanwhile
    records = topic.wait(lambda r: len(r) >= 5, message="the fifth transition")
    assert [(r.value["op"], r.value["after"]["status"]) for r in records] == [
        ("r", 1), ("c", 2), ("c", 5), ("c", 4), ("c", 9)]  # once each: no overlap duplicate
    assert {r.key["id"] for r in records} == {7} and len({r.partition for r in records}) == 1
    capture.stop()
    topic.close()

    # Schemaless naive timestamps are MicroTimestamps: the bridge is told so, never guesses.
    micros = dict.fromkeys(("received_at", "due_at", "updated_at"), "timestamp_us")
    pipeline = Pipeline(load_settings(None, source={"column_types": micros}))
    errors = io.StringIO()
    kinds = [n.kind for n in render_lines(pipeline, [json.dumps(r.value) for r in records], errors)
             if n is not None]
    assert kinds == ["RECEIVED", "SUPPLEMENT_REQUESTED", "RESULT_READY"], errors.getvalue()


def _polling(tmp_path, state: str = "state.sqlite", bootstrap: str = "127.0.0.1:9"):
    import threading

    from connectors.polling import PollingCapture

    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", "bad", bootstrap, str(tmp_path / state))
    return PollingCapture(settings, threading.Event())


def test_a_missing_sqlite_file_or_a_broken_state_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"SQLite file .*onestop\.db does not exist"):
        _polling(tmp_path)
    assert not (tmp_path / "onestop.db").exists()  # not created empty
    _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    (tmp_path / "state.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match=r"state file .*state\.sqlite \(source\.state_path\)"):
        _polling(tmp_path)


def test_a_value_its_column_cannot_read_stops_polling_naming_the_table(tmp_path) -> None:
    engine = _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, due_at, updated_at) "
                             "VALUES (1, 'BAD-1', 2, '31/12/2026', '2026-12-07 08:00:00')")
    with pytest.raises(ConfigError, match=r"table public\.dossiers: a row holds a value .*31/12/2026"):
        _polling(tmp_path).run()


@pytest.mark.services
def test_rows_without_updated_at_are_reported_and_the_rest_captured(broker, unique_name, tmp_path,
                                                                    start_capture, caplog) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL.replace("updated_at TIMESTAMP NOT NULL", "updated_at TIMESTAMP"))
        conn.exec_driver_sql("INSERT INTO dossiers (id, code, status, updated_at) VALUES "
                             "(1, 'NULL-1', 2, NULL), (2, 'STAMPED-2', 2, '2026-12-07 08:00:00')")
    caplog.set_level(logging.WARNING, logger="onestop.capture.polling")
    topic = TopicReader(broker.bootstrap, f"{unique_name}.public.dossiers")
    capture = start_capture(_settings(f"sqlite:///{tmp_path / 'onestop.db'}", unique_name, broker.bootstrap,
                                      str(tmp_path / "state.sqlite")), mode="polling")
    records = topic.wait(lambda r: len(r) >= 1, message="the stamped row")
    assert _codes(records) == [("r", "STAMPED-2")]
    assert any("1 rows of public.dossiers have no updated_at" in r.getMessage() for r in caplog.records)
    capture.stop()
    topic.close()


def test_a_signal_table_set_for_polling_is_said_to_be_ignored(tmp_path, caplog) -> None:
    """Incremental snapshots need the WAL stream: in polling mode the setting does nothing,
    and a deployment that copied it from a log-based one is told so, not left waiting."""
    import threading

    from connectors.polling import PollingCapture

    _create(sa.create_engine(f"sqlite:///{tmp_path / 'onestop.db'}"))
    settings = _settings(f"sqlite:///{tmp_path / 'onestop.db'}", "sig", "127.0.0.1:9", str(tmp_path / "s"))
    signalled = settings.model_copy(update={"source": settings.source.model_copy(
        update={"signal_table": "public.onestop_signal"})})
    with caplog.at_level(logging.WARNING, logger="onestop.capture.polling"):
        PollingCapture(signalled, threading.Event())
    assert any("source.signal_table is ignored in polling mode" in r.getMessage() for r in caplog.records)
