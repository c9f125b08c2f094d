"""`onestop-bridge run`: configuration problems are one clear line and exit status 2."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bridge.embedded import free_port
from bridge.kafka_clients import consumer_config, producer_config
from bridge.run import check_oa_id, main
from bridge.settings import load_settings
from waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_missing_config_file_is_one_line_and_exit_2(capsys, tmp_path) -> None:
    assert main(["--config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onestop-bridge run: config file not found")


def test_invalid_value_is_reported_without_a_traceback(tmp_path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[dispatch]\nworkers = "many"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bridge.run", "--config", str(config)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "workers" in result.stderr


def test_unusable_ledger_url_is_a_configuration_error(tmp_path, capsys) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[ledger]\nurl = "sqlite://"\n[http]\nport = 0\n', encoding="utf-8")
    assert main(["--config", str(config)]) == 2
    assert "in-memory SQLite ledger" in capsys.readouterr().err


def test_a_real_oa_without_its_id_is_an_error_in_the_log(caplog) -> None:
    """Every RECEIVED notice would link to zalo.me/000…: said at start, before any notice."""
    with caplog.at_level(logging.ERROR, logger="onestop.run"):
        check_oa_id(load_settings(zalo={"app_id": "2074138120372622546"}, oa={"oa_id": ""}))
        check_oa_id(load_settings(zalo={"app_id": "2074138120372622546"},
                                  oa={"oa_id": "1032900368640139458"}))
        check_oa_id(load_settings())  # no OA at all: a dry run, a test
    [said] = caplog.records
    assert "oa.oa_id (ONESTOP_OA__OA_ID) is not set" in said.getMessage()


def test_kafka_clients_get_their_own_settings() -> None:
    settings = load_settings(kafka={"extra": {"session.timeout.ms": 6000,
                                              "security.protocol": "SASL_SSL"}})
    consumer, producer = consumer_config(settings), producer_config(settings)
    assert consumer["enable.auto.commit"] is False
    assert consumer["partition.assignment.strategy"] == "range"
    assert consumer["session.timeout.ms"] == 6000
    assert "session.timeout.ms" not in producer and producer["security.protocol"] == "SASL_SSL"
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True


def test_http_port_in_use_is_a_configuration_error(tmp_path) -> None:
    """Exit status 2 (the systemd unit does not restart on it), one line, no traceback."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "bridge.toml"
        config.write_text(f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n'
                          f'[http]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "bridge.run", "--config", str(config)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"onestop-bridge run: cannot listen on 127.0.0.1:{port} (http.host, http.port)" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_while_kafka_is_unreachable_stops_within_seconds(tmp_path) -> None:
    """The bridge asks for metadata a second at a time while it waits for Kafka."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESTOP_")}
    env.update(ONESTOP_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}", ONESTOP_HTTP__PORT="0",
               ONESTOP_LEDGER__URL=f"sqlite:///{tmp_path / 'ledger.db'}")
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "bridge.run"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "broker not reachable yet" in log.read_text(), timeout=60,
                 message="the first metadata request failed")
        time.sleep(1.5)  # into the next request: it used to last 10 s
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert '"msg": "bridge stopped"' in log.read_text()
