"""End-to-end helpers: `onestop-bridge run` as a real subprocess, the sandbox in-process,
events produced with kafka-python (a different client than the bridge's own)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from bridge.embedded import free_port
from waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CODE = "000.00.23.H39-240612-{:05d}"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        future.result(15)


def produce(bootstrap: str, topic: str, documents: list[Any]) -> None:
    """kafka-python, keyed by dossier id like Debezium does."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    for doc in documents:
        if isinstance(doc, bytes):
            producer.send(topic, key=b'{"id": 0}', value=doc)
            continue
        row = doc["after"] or doc["before"]
        producer.send(topic, key=json.dumps({"id": row["id"]}).encode(),
                      value=json.dumps(doc, ensure_ascii=False).encode())
    producer.flush(60)
    producer.close()


@dataclass
class BridgeProcess:
    """`python -m bridge.run --config FILE --sandbox URL` with its log in a file."""

    config: Path
    sandbox_url: str
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> BridgeProcess:
        self.starts += 1
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.run", "--config", str(self.config),
             "--sandbox", self.sandbox_url], stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=str(self.config.parent))
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            try:
                response = httpx.get(self.url + "/readyz", timeout=5)
            except httpx.HTTPError:
                return None
            return response.json() if response.status_code == 200 else None

        return wait_for(ready, timeout=timeout, interval=0.2, message="bridge /readyz")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, label_text = head.partition("{")
            if metric != name:
                continue
            if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                total += float(value)
        return total

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> float:
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"bridge ignored SIGTERM for {timeout}s\n{self.tail()}")
        return time.monotonic() - started

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class SandboxWatcher:
    """Everything the sandbox accepted, fetched incrementally."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    _after: int = 0

    def poll(self) -> list[dict[str, Any]]:
        while True:
            batch = httpx.get(self.url + "/sandbox/messages",
                              params={"after": self._after, "limit": 5000}, timeout=30).json()
            if not batch:
                return self.seen
            self.seen.extend(batch)
            self._after = batch[-1]["seq"]

    def by_tracking(self) -> Counter[str]:
        return Counter(m["tracking_id"] for m in self.poll())

    def channels(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for m in self.poll():
            out.setdefault(m["tracking_id"], []).append(m["channel"])
        return out


def stop_all(bridge: BridgeProcess, sandbox: Any) -> None:
    """Teardown: a bridge still running (a failed test) is killed, the sandbox stopped."""
    if bridge.proc and bridge.proc.poll() is None:
        bridge.kill9()
    sandbox.stop()


def base_sections(broker: Any, topic: str, ledger_url: str, port: int,
                  **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "source": {"topic": topic},
        "kafka": {"bootstrap_servers": broker.bootstrap, "group_id": f"bridge-{topic}",
                  "extra": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
        "ledger": {"url": ledger_url},
        "http": {"host": "127.0.0.1", "port": port},
        "dispatch": {"workers": 4, "max_in_flight": 200, "backoff_initial_s": 0.05,
                     "backoff_max_s": 0.2, "retry_delays_s": [1.0, 1.0],
                     "shutdown_deadline_s": 8.0},
        "log": {"level": "INFO"},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return sections


def unique_topic(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}.public.dossiers"


def new_bridge(tmp_path: Path, sandbox_url: str, sections: dict[str, dict[str, Any]]) -> BridgeProcess:
    port = sections["http"]["port"]
    config = write_config(tmp_path / "bridge.toml", sections)
    return BridgeProcess(config, sandbox_url, tmp_path / "bridge.log", port)


__all__ = ["BridgeProcess", "CODE", "SandboxWatcher", "base_sections", "create_topic",
           "free_port", "new_bridge", "produce", "unique_topic", "write_config"]
