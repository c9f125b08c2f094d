"""Database restart, a stale walsender holding the slot, and the command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extras import LogicalReplicationConnection

from bridge import metrics
from bridge.embedded import EmbeddedBroker, free_port
from capture_support import TopicReader, insert_dossier, reconnects
from events import present
from waiting import wait_for

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]


def _streaming(capture) -> bool:
    return capture.alive() and metrics.capture_connected._value.get() == 1  # noqa: SLF001


def test_database_restart_reconnects_and_continues(pg, capture_db, start_capture, reader) -> None:
    capture = start_capture(capture_db.settings())
    topic = reader()
    wait_for(lambda: _streaming(capture), timeout=30, message="streaming")
    conn = capture_db.connect()
    insert_dossier(conn, "BEFORE-RESTART")
    topic.wait(lambda r: len(r) >= 1, message="row before the restart")
    conn.close()
    before = reconnects("connection")
    pg.restart(immediate=True)  # crash-stop: connections die without goodbye
    conn = capture_db.connect()
    insert_dossier(conn, "AFTER-RESTART")
    conn.close()
    records = topic.wait(lambda r: any(x.value["after"]["code"] == "AFTER-RESTART" for x in r),
                         timeout=60, message="row written after the restart")
    assert reconnects("connection") > before
    codes = [r.value["after"]["code"] for r in records]
    assert codes.count("AFTER-RESTART") == 1 and "BEFORE-RESTART" in codes
    capture.stop()


def test_a_stalled_broker_holds_the_slot_back_and_loses_nothing(broker, capture_db, start_capture,
                                                                reader) -> None:
    """Kafka stops answering mid-stream: the slot is not confirmed past what Kafka has."""
    capture = start_capture(capture_db.settings())
    topic = reader()
    wait_for(lambda: _streaming(capture), timeout=30, message="streaming")
    conn = capture_db.connect()
    insert_dossier(conn, "BEFORE-STALL")
    topic.wait(lambda r: any(x.value and x.value["after"]["code"] == "BEFORE-STALL" for x in r),
               message="row before the stall")
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        for i in range(20):
            insert_dossier(conn, f"DURING-STALL-{i}")
        (first_unacked,) = capture_db.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0]
        # The connector keeps talking to the server (keepalives, heartbeats) for several
        # feedback intervals, and must never confirm the stalled rows.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            assert capture_db.confirmed_flush() < first_unacked
            time.sleep(0.25)
        assert capture.alive()
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    conn.close()
    records = topic.wait(lambda r: {f"DURING-STALL-{i}" for i in range(20)} <= {
        x.value["after"]["code"] for x in r if x.value}, timeout=60, message="rows from the stall")
    wait_for(lambda: capture_db.confirmed_flush() >= first_unacked, timeout=30,
             message="slot confirmed once Kafka acknowledged")
    codes = [x.value["after"]["code"] for x in records if x.value]
    # The same session and producer throughout: idempotent retries, no replay, no duplicate.
    assert all(codes.count(f"DURING-STALL-{i}") == 1 for i in range(20)), codes
    capture.stop()


def test_stale_walsender_holding_the_slot_is_taken_over(capture_db, start_capture, reader, caplog) -> None:
    first = start_capture(capture_db.settings())
    wait_for(lambda: _streaming(first), timeout=30, message="slot created")
    first.stop()
    # A walsender left behind by a vanished client: it holds the slot and never answers.
    holder = psycopg2.connect(capture_db.dsn, connection_factory=LogicalReplicationConnection)
    holder.cursor().start_replication(slot_name=capture_db.name, decode=False, options={
        "proto_version": "1", "publication_names": capture_db.name})
    holder_pid = holder.info.backend_pid
    wait_for(lambda: _slot_holder(capture_db) == holder_pid, message="slot held")
    busy_before = reconnects("slot_busy")
    caplog.set_level(logging.WARNING, logger="onestop.capture")
    capture = start_capture(capture_db.settings(slot_takeover_after_s=2.0))
    wait_for(lambda: _streaming(capture), timeout=40, message="slot taken over")
    assert reconnects("slot_busy") > busy_before
    assert any(f"terminated walsender PID {holder_pid}" in r.getMessage() for r in caplog.records)
    _row_reaches_kafka(capture_db, reader, "AFTER-TAKEOVER")
    capture.stop()
    holder.close()


def test_a_role_that_cannot_see_replies_never_terminates_a_live_connector(
        capture_db, start_capture, reader, caplog) -> None:
    """Without pg_read_all_stats, pg_stat_replication hides reply_time: a second instance
    cannot tell a live connector from a stale one, so it waits, says why, and leaves the
    first streaming, however long past slot_takeover_after_s."""
    with capture_db.least_privilege_role() as dsn:
        capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers')
        first = start_capture(capture_db.settings(dsn=dsn))
        wait_for(lambda: _streaming(first), timeout=30, message="first instance streaming")
        holder = _slot_holder(capture_db)
        busy_before = reconnects("slot_busy")
        caplog.set_level(logging.WARNING, logger="onestop.capture")
        second = start_capture(capture_db.settings(dsn=dsn, slot_takeover_after_s=0.5))
        # Three refusals, each after the 0.5 s grace: the old fallback (time waited) had
        # terminated the first instance by then.
        wait_for(lambda: reconnects("slot_busy") >= busy_before + 3, timeout=30,
                 message="second instance waiting on the slot")
        assert any("cannot see whether it answers" in r.getMessage() for r in caplog.records)
        assert not any("terminated walsender" in r.getMessage() for r in caplog.records)
        assert _slot_holder(capture_db) == holder
        confirmed = capture_db.confirmed_flush() or 0
        _row_reaches_kafka(capture_db, reader, "FIRST-STILL-STREAMS")
        # The first moves the slot past the bound the second read at its start: the second
        # must not take that for a re-created slot (it logged an ERROR saying so, and
        # could have snapshotted every table again).
        wait_for(lambda: (capture_db.confirmed_flush() or 0) > confirmed, message="slot confirmed on")
        busy = reconnects("slot_busy")
        wait_for(lambda: reconnects("slot_busy") >= busy + 2, timeout=30, message="second still waiting")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
        second.stop()
        first.stop()


def _slot_holder(capture_db) -> int | None:
    return capture_db.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                              (capture_db.name,))[0][0]


def _row_reaches_kafka(capture_db, reader, code: str) -> None:
    conn = capture_db.connect()
    insert_dossier(conn, code)
    conn.close()
    reader().wait(lambda r: any(x.value["after"]["code"] == code for x in r), message=f"row {code}")


def _cli(*args: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    script = Path(sys.executable).parent / "onestop-bridge"
    command = [str(script), "capture"] if script.exists() else [sys.executable, "-m", "connectors"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("ONESTOP_")}
    return command + list(args), {**base, **env}


def test_cli_runs_with_three_variables_serves_metrics_and_stops_gracefully(capture_db, reader, tmp_path) -> None:
    """Only DSN, tables and bootstrap set: reference schema → topic onestop.public.dossiers."""
    port = free_port()
    command, env = _cli("--metrics-port", str(port), env={
        "ONESTOP_SOURCE__DSN": capture_db.dsn, "ONESTOP_SOURCE__TABLES": "public.dossiers",
        "ONESTOP_KAFKA__BOOTSTRAP_SERVERS": capture_db.bootstrap})
    log = tmp_path / "capture.log"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        def scrape() -> str:
            assert proc.poll() is None, log.read_text()
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                return ""

        wait_for(lambda: "onestop_capture_connected 1.0" in scrape(), timeout=60, message="connected")
        conn = capture_db.connect()
        code = f"CLI-{capture_db.name}"
        insert_dossier(conn, code)
        (lsn,) = capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0]
        conn.close()
        reader("onestop.public.dossiers").wait(
            lambda r: any(x.value and x.value["after"]["code"] == code for x in r), message="record")
        served = scrape()
        assert "onestop_capture_events_total" in served and "onestop_build_info" in served
        assert "onestop_zns_quota_remaining" not in served  # the bridge's, never filled here
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(45) == 0, log.read_text()
        assert capture_db.execute("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint "
                                  "FROM pg_replication_slots WHERE slot_name = 'onestop_bridge'")[0][0] >= lsn
        # One JSON object per line, librdkafka's too (it once printed a CONFWARN of its own).
        assert [json.loads(line)["level"] for line in log.read_text().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_with_kafka_unreachable_logs_json_once_a_minute_and_retries(capture_db, tmp_path) -> None:
    """librdkafka retries a dead broker every ~50 ms; the operator gets a JSON line a minute."""
    command, env = _cli("--metrics-port", "0", env=capture_db.env(
        ONESTOP_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", ONESTOP_LOG__FORMAT="json"))
    log = tmp_path / "capture.log"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "capture session ended (kafka" in log.read_text(), timeout=60,
                 message="a Kafka failure ends the session and is retried")
        proc.send_signal(signal.SIGTERM)
        # Kafka is asked a second at a time, so the stop does not wait out the 15 s attempt.
        assert proc.wait(10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in log.read_text().splitlines()]  # nothing but JSON
    refused = [x for x in lines if x["logger"] == "onestop.kafka" and "Connection refused" in x["msg"]]
    assert refused and all(x["facility"] == "FAIL" and x["level"] == "ERROR" for x in refused)
    # Each client (the session's producer, one offsets reader per attempt) at most once.
    assert len(refused) == len({x["client"] for x in refused}), refused


def test_cli_exits_2_when_its_metrics_port_is_in_use(tmp_path) -> None:
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        command, env = _cli("--metrics-port", str(port), env={
            "ONESTOP_SOURCE__DSN": "postgresql://onestop_capture@127.0.0.1:1/onestop"})
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"cannot serve /metrics on 0.0.0.0 port {port} (--metrics-host, --metrics-port)" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_metrics_can_be_kept_to_one_address(tmp_path) -> None:
    """`--metrics-host 127.0.0.1`: Prometheus on this host scrapes it, nothing else reaches it."""
    port = free_port()
    command, env = _cli("--metrics-port", str(port), "--metrics-host", "127.0.0.1", env={
        "ONESTOP_SOURCE__DSN": "postgresql://onestop_capture@127.0.0.1:1/onestop"})
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def served(host: str) -> bool:
            try:
                return b"onestop_capture_connected" in urllib.request.urlopen(
                    f"http://{host}:{port}/metrics", timeout=2).read()
            except OSError:
                return False

        wait_for(lambda: served("127.0.0.1"), timeout=30, message="/metrics on 127.0.0.1")
        with pytest.raises(ConnectionRefusedError):  # another address of this host
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(30)


def test_cli_exits_2_naming_a_table_without_primary_key(capture_db, tmp_path) -> None:
    capture_db.execute("CREATE TABLE history (dossier_id bigint, status smallint)")
    command, env = _cli("--metrics-port", "0", env=capture_db.env(ONESTOP_SOURCE__TABLES="public.history"))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "public.history has no primary key" in result.stderr
    assert "REPLICA IDENTITY FULL" in result.stderr


def test_cli_exits_2_when_the_server_refuses_the_role(capture_db, tmp_path) -> None:
    """A login the server refuses (no such role, wrong password, no pg_hba.conf line) is a
    setting to fix, not an outage: exit 2 at once, instead of failed logins forever."""
    dsn = capture_db.dsn.replace("postgresql://postgres@", "postgresql://no_such_role@")
    command, env = _cli("--metrics-port", "0", env=capture_db.env(ONESTOP_SOURCE__DSN=dsn))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert 'role "no_such_role" does not exist' in result.stderr
    assert "retrying" not in result.stderr


def test_while_kafka_is_down_the_slot_lag_is_measured_and_the_event_age_grows(capture_db, start_capture) -> None:
    """The slot holds WAL between sessions too: that is when OnestopCaptureSlotLag* must be
    able to fire, so the gauges cannot keep the last session's reassuring values."""
    first = start_capture(capture_db.settings())
    wait_for(lambda: _streaming(first), timeout=30, message="streaming")
    first.stop()
    conn = capture_db.connect()
    for i in range(50):
        insert_dossier(conn, f"WHILE-KAFKA-DOWN-{i}")
    conn.close()
    (behind,) = capture_db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                                   "FROM pg_replication_slots WHERE slot_name = %s", (capture_db.name,))[0]
    settings = capture_db.settings()
    settings.kafka.bootstrap_servers = f"127.0.0.1:{free_port()}"
    ended = reconnects("kafka")
    down = start_capture(settings)
    wait_for(lambda: reconnects("kafka") > ended, timeout=60, message="a session ended by Kafka")
    wait_for(lambda: _sample("onestop_capture_slot_lag_bytes") >= behind, timeout=10,
             message="the slot's lag measured between sessions")
    age = _sample("onestop_capture_last_event_age_seconds")
    wait_for(lambda: _sample("onestop_capture_last_event_age_seconds") > age + 1, timeout=10,
             message="the event age grows while nothing is captured")
    down.stop()


def _sample(name: str) -> float:
    return present(metrics.REGISTRY.get_sample_value(name))


def test_kafka_gone_past_the_message_timeout_is_reported_survived_and_recovered(
        capture_db, start_capture, monkeypatch) -> None:
    """Kafka goes away while the captured table is quiet, long enough for records to time
    out, and comes back empty (tansu keeps nothing; to the producer, a new cluster). Capture
    says it is not connected, keeps running, and streams what was written meanwhile. Before:
    the heartbeats failed unnoticed (connected stayed 1, no alert), and once a session did
    end, the failure read again while it waited to retry ended the process (exit 1); then
    each new session streamed into the absent broker calling itself connected until the
    records timed out again (OnestopConnectorDown never fired), and the wait on Kafka showed
    in no metric across sessions."""
    connected: list[float] = []
    gauge_set = metrics.capture_connected.set

    def noted(value: float) -> None:
        connected.append(value)
        gauge_set(value)

    monkeypatch.setattr(metrics.capture_connected, "set", noted)
    broker = EmbeddedBroker().start()
    try:
        settings = capture_db.settings()
        settings.kafka.bootstrap_servers = broker.bootstrap
        settings.kafka.extra = {"message.timeout.ms": 3000}
        capture = start_capture(settings)
        wait_for(lambda: _streaming(capture), timeout=30, message="streaming")
        beats = _sample("onestop_capture_heartbeats_total")
        wait_for(lambda: _sample("onestop_capture_heartbeats_total") > beats, timeout=15,
                 message="a heartbeat acknowledged")
        assert _sample("onestop_capture_kafka_unacknowledged_seconds") < 3
        ended = reconnects("kafka")
        broker.stop()
        wait_for(lambda: reconnects("kafka") > ended and not _streaming(capture), timeout=30,
                 message="the refused heartbeat ends the session: not connected")
        since_first_end = len(connected)
        conn = capture_db.connect()
        insert_dossier(conn, "WHILE-KAFKA-GONE")
        conn.close()
        wait_for(lambda: reconnects("kafka") > ended + 1, timeout=60,
                 message="a second session ended by Kafka (the retry's wait survived)")
        assert capture.alive()
        assert 1 not in connected[since_first_end:]  # no session streamed while Kafka was gone
        waited = _sample("onestop_capture_kafka_unacknowledged_seconds")
        assert waited > 3  # the heartbeat's 3 s timeout and more: counted across sessions
        wait_for(lambda: _sample("onestop_capture_kafka_unacknowledged_seconds") > waited + 1, timeout=10,
                 message="the wait on Kafka growing between sessions")
        broker = EmbeddedBroker(port=broker.port).start()
        topic = TopicReader(broker.bootstrap, capture_db.topic)
        try:
            topic.wait(lambda r: any(x.value and x.value["after"]["code"] == "WHILE-KAFKA-GONE" for x in r),
                       timeout=90, message="the row written while Kafka was gone")
        finally:
            topic.close()
        wait_for(lambda: _streaming(capture), timeout=30, message="connected again")
        wait_for(lambda: _sample("onestop_capture_kafka_unacknowledged_seconds") < 3, timeout=30,
                 message="nothing waiting for Kafka any more")
    finally:
        broker.stop()
