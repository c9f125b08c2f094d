"""`onestop-bridge run`: configuration problems are one clear line and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from bridge.run import consumer_config, main, producer_config
from bridge.settings import load_settings

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
