"""deploy/compose.yaml and the Dockerfile, validated structurally (no Docker daemon here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.settings import load_settings
from deploy_helpers import DEPLOY, ROOT, assert_engines_build, load_yaml, read_env_file, settings_env_names

COMPOSE = DEPLOY / "compose.yaml"
CONFIG = DEPLOY / "config" / "onestop-bridge.toml"
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|DSN|LEDGER__URL")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_files(service: dict[str, Any]) -> list[Path]:
    files = service.get("env_file", [])
    files = [files] if isinstance(files, str) else files
    return [DEPLOY / (f if isinstance(f, str) else f["path"]) for f in files]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_the_production_stack_is_all_there(services: dict[str, dict[str, Any]]) -> None:
    images = {name: service.get("image", "") for name, service in services.items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert "debezium/connect" in images["connect"]
    assert images["postgres"].startswith("postgres:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana:")
    assert services["run"]["command"][0] == "run"
    assert services["capture"]["command"][0] == "capture"
    assert services["run"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # A KRaft cluster id is 16 bytes, base64url without padding.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])


def test_postgres_has_logical_decoding(services: dict[str, dict[str, Any]]) -> None:
    assert "wal_level=logical" in services["postgres"]["command"]


def test_exactly_one_capture_per_profile(services: dict[str, dict[str, Any]]) -> None:
    """Both connectors write the same topic: they must never start together."""
    assert services["capture"]["profiles"] == ["builtin"]
    assert services["connect"]["profiles"] == ["debezium"]
    assert services["connect-init"]["profiles"] == ["debezium"]
    for name, service in services.items():
        if name not in ("capture", "connect", "connect-init"):
            assert "profiles" not in service, f"{name} must run in every profile"


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_bind_mounts_and_env_file_templates_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
        for env_file in env_files(service):
            example = env_file.with_name(env_file.name + ".example")
            assert example.exists(), f"{name}: no template {example.name} for {env_file.name}"
    ignored = (DEPLOY / "env" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*.env" in ignored


def test_onestop_variables_are_real_settings(services: dict[str, dict[str, Any]]) -> None:
    known = settings_env_names()
    used: set[str] = set()
    for service in services.values():
        used |= set(environment(service))
        for env_file in env_files(service):
            used |= set(read_env_file(env_file.with_name(env_file.name + ".example")))
    onestop = {name for name in used if name.startswith("ONESTOP_")}
    assert onestop, "compose sets no ONESTOP_ variable"
    assert onestop <= known, f"not settings of bridge/settings.py: {sorted(onestop - known)}"


def test_no_secret_is_written_inline(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            assert not SECRET_WORDS.search(key), f"{name}: secret {key} belongs in an env file"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{name}: password in {key}"


@pytest.mark.parametrize("template", ["bridge.env.example", "capture.env.example"])
def test_env_templates_are_accepted_by_the_settings(template: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in read_env_file(DEPLOY / "env" / template).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(CONFIG)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert_engines_build(settings)


def test_config_file_loads_and_matches_the_ports_prometheus_scrapes(
        services: dict[str, dict[str, Any]]) -> None:
    settings = load_settings(CONFIG)
    assert settings.http.port == 8080
    assert environment(services["run"])["ONESTOP_HTTP__PORT"] == "8080"
    command = services["capture"]["command"]
    assert command[command.index("--metrics-port") + 1] == "8081"
    mount = "./config/onestop-bridge.toml:/etc/onestop-bridge/config.toml:ro"
    assert mount in services["run"]["volumes"] and mount in services["capture"]["volumes"]


def test_kafka_init_creates_the_topics_the_bridge_uses(services: dict[str, dict[str, Any]]) -> None:
    settings = load_settings(CONFIG)
    script = services["kafka-init"]["command"][0]
    created = set(re.findall(r"--topic (\S+)", script))
    topic = settings.source.topic
    offsets = f"{settings.source.topic_prefix}.offsets"  # the builtin connector's (compacted)
    assert created == {topic, topic + settings.kafka.retry_topic_suffix,
                       topic + settings.kafka.dlq_topic_suffix, offsets}
    assert re.search(rf"--topic {re.escape(offsets)} .*--config cleanup.policy=compact\n", script)


def test_stop_grace_period_covers_the_graceful_shutdown(services: dict[str, dict[str, Any]]) -> None:
    deadline = load_settings(CONFIG).dispatch.shutdown_deadline_s
    grace = int(services["run"]["stop_grace_period"].removesuffix("s"))
    assert grace > deadline


def test_prometheus_keeps_the_30_days_the_dashboard_shows(services: dict[str, dict[str, Any]]) -> None:
    flags = " ".join(services["prometheus"]["command"])
    days = int(re.search(r"--storage.tsdb.retention.time=(\d+)d", flags).group(1))  # type: ignore[union-attr]
    assert days >= 30


def test_dockerfile_builds_the_package_on_python_3_11_slim() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"pip install \.( |$)", dockerfile, re.M)
    assert "/opt/onestop-bridge/.venv" in dockerfile  # same path as the systemd units
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M), "image must not run as root"
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} missing from the repository"


def test_the_image_runs_the_compiled_hot_path_without_a_compiler() -> None:
    """setup.py and gcc in the build stage (else `pip install .` silently installs plain
    Python), a check that fails the build if it did not compile, no gcc in the runtime."""
    _, build, runtime = re.split(r"^FROM ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"), flags=re.M)
    assert re.search(r"^COPY .*\bsetup\.py\b", build, re.M)
    assert re.search(r"apt-get install .*\bgcc\b", build)
    assert "bridge.compiled()" in build
    assert "gcc" not in runtime and "COPY --from=build /opt/onestop-bridge/.venv" in runtime
