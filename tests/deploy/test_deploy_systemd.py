"""The systemd units: the brief's ExecStart, hardening, a stop timeout above the shutdown
deadline, and systemd's own verdict where systemd-analyze is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.settings import load_settings
from deploy_helpers import DEPLOY, assert_engines_build, read_env_file, settings_env_names

UNITS = {
    "run": DEPLOY / "systemd" / "onestop-bridge-run.service",
    "capture": DEPLOY / "systemd" / "onestop-bridge-capture.service",
}
ENV_EXAMPLE = DEPLOY / "systemd" / "onestop-bridge.env.example"
VENV_BIN = "/opt/onestop-bridge/.venv/bin/onestop-bridge"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values (systemd keys may repeat, so configparser will not do)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_starts_the_installed_cli_with_the_production_config(role: str) -> None:
    service = parse_unit(UNITS[role])["Service"]
    command = service["ExecStart"][0].split()
    assert command[:4] == [VENV_BIN, role, "--config", "/etc/onestop-bridge/config.toml"]
    if role == "run":
        assert len(command) == 4
    else:
        assert command[4:] == ["--metrics-port", "8081"]  # the onestop-capture scrape target
    assert service["EnvironmentFile"] == ["/etc/onestop-bridge/onestop-bridge.env"]
    assert parse_unit(UNITS[role])["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_is_hardened(role: str) -> None:
    service = parse_unit(UNITS[role])["Service"]
    expected = {
        "Restart": "on-failure", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "",
        "RestartPreventExitStatus": "2",  # configuration error: restarting cannot fix it
    }
    for key, value in expected.items():
        assert service.get(key) == [value], f"{role}: {key}"
    assert service.get("DynamicUser") == ["yes"] or service.get("User", ["root"]) != ["root"]
    assert service["StateDirectory"] == ["onestop-bridge"]


@pytest.mark.parametrize("role", sorted(UNITS))
def test_stop_timeout_leaves_room_for_the_graceful_shutdown(role: str) -> None:
    service = parse_unit(UNITS[role])["Service"]
    deadline = load_settings(DEPLOY / "config" / "onestop-bridge.toml").dispatch.shutdown_deadline_s
    assert service["KillSignal"] == ["SIGTERM"]
    assert seconds(service["TimeoutStopSec"][0]) >= deadline + 5


def test_env_example_names_real_settings_and_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    values = read_env_file(ENV_EXAMPLE)
    unknown = set(values) - settings_env_names()
    assert not unknown, f"not settings of bridge/settings.py: {sorted(unknown)}"
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(DEPLOY / "config" / "onestop-bridge.toml")
    assert settings.source.dsn is not None and settings.oa.lookup_dsn is not None
    assert settings.ledger.url.startswith("postgresql")
    assert_engines_build(settings)


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not installed (not a systemd host)")
    return path


@pytest.mark.parametrize("role", sorted(UNITS))
def test_systemd_accepts_the_unit(role: str) -> None:
    result = subprocess.run([_analyze(), "verify", "--man=no", "--generators=no", str(UNITS[role])],
                            capture_output=True, text=True, timeout=60, check=False)
    # The virtualenv is not installed on the test machine; every other complaint counts.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and f"Command {VENV_BIN} is not executable" not in line]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", sorted(UNITS))
def test_systemd_rates_the_unit_exposure_ok(role: str) -> None:
    # --threshold is on systemd's 0-100 scale: 20 = exposure 2.0 ("OK" ends at 4.9).
    result = subprocess.run([_analyze(), "security", "--offline=true", "--threshold=20",
                             "--no-pager", str(UNITS[role])],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-600:] + result.stderr
