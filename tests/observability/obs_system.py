"""The whole system for the observability tests: PostgreSQL source, connector, broker,
bridge (`onestop-bridge run`) and the Zalo/SMS sandbox — as real processes, as the demo runs.

The connector and the bridge are subprocesses (their own metric registries, their own
JSON logs on stderr, captured to files); the sandbox runs in-process and sends its
delivery receipts and user events to the bridge's signed webhook.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from waiting import wait_for

from bridge.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from bridge.sandbox import SandboxHandle, run_in_thread

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SQL = ROOT / "schemas" / "reference.sql"
OA_SECRET = "sandbox-oa-secret"
APP_ID = "sandbox-app"
# Phones of the scripted citizens: each one takes one delivery path.
PHONE_OA = "84912000101"      # follows the OA and shared the phone → free OA message
PHONE_ZNS = "84912000102"     # has Zalo, not a follower → ZNS template message
PHONE_SMS = "84912000103"     # no Zalo account (-118) → SMS fallback
PHONE_RETRY = "84912000104"   # two Zalo hiccups (-100) → retry topic → delivered next round
PHONE_RETRY_2 = "84912000105"  # the same, kept for the Prometheus scrape test
OA_USER = "8400000000101"


def scenario() -> dict[str, Any]:
    return {"phones": {PHONE_SMS: {"has_zalo": False}, PHONE_RETRY: {"zns": [-100, -100]},
                       PHONE_RETRY_2: {"zns": [-100, -100]}},
            "followers": {OA_USER: {"phone": PHONE_OA}},
            "delivery_delay_ms": 20, "webhook_retry_delays_s": [1.0, 2.0]}


def citizen_webhook_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("bridge.citizen.routes") is not None
    except ModuleNotFoundError:
        return False


@dataclass
class System:
    pg: EmbeddedPostgres
    broker: EmbeddedBroker
    workdir: Path
    dsn: str = ""
    sandbox: SandboxHandle | None = None
    bridge_port: int = 0
    capture_port: int = 0
    ledger_url: str = ""
    prefix: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> System:
        self.prefix = f"obs{uuid.uuid4().hex[:6]}"
        self.dsn = self._create_source_db()
        self.bridge_port, self.capture_port = free_port(), free_port()
        self.ledger_url = f"sqlite:///{self.workdir / 'ledger.db'}"
        self.sandbox = run_in_thread(scenario=scenario(), app_id=APP_ID, oa_secret_key=OA_SECRET,
                                     webhook_url=f"http://127.0.0.1:{self.bridge_port}/webhook/zalo")
        # One row before the connector starts: the initial snapshot reads it (op=r, no notice).
        self.insert(status=2, phone=PHONE_ZNS, code_suffix="SNAP")
        self._spawn("capture", ["capture", "--metrics-port", str(self.capture_port)])
        self._spawn("run", ["run", "--sandbox", self.sandbox.url])
        wait_for(self._ready, timeout=90, interval=0.2, message="bridge /readyz")
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.sandbox is not None:
            self.sandbox.stop()
        with contextlib.suppress(Exception):
            admin = self.pg.connect()
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"SELECT pg_drop_replication_slot('{self.prefix}')")
            admin.close()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ONESTOP_SOURCE__DSN": self.dsn, "ONESTOP_SOURCE__TABLES": "public.dossiers",
            "ONESTOP_SOURCE__SLOT": self.prefix, "ONESTOP_SOURCE__PUBLICATION": self.prefix,
            "ONESTOP_SOURCE__TOPIC_PREFIX": self.prefix,
            "ONESTOP_SOURCE__TOPIC": f"{self.prefix}.public.dossiers",
            "ONESTOP_SOURCE__HEARTBEAT_INTERVAL_S": "1",
            "ONESTOP_SOURCE__STATE_PATH": str(self.workdir / "capture-state.sqlite"),
            "ONESTOP_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "ONESTOP_KAFKA__GROUP_ID": f"{self.prefix}-bridge",
            "ONESTOP_KAFKA__EXTRA": '{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}',
            "ONESTOP_LEDGER__URL": self.ledger_url,
            "ONESTOP_HTTP__HOST": "127.0.0.1", "ONESTOP_HTTP__PORT": str(self.bridge_port),
            "ONESTOP_ZALO__APP_ID": APP_ID, "ONESTOP_ZALO__OA_SECRET_KEY": OA_SECRET,
            "ONESTOP_DISPATCH__ATTEMPTS": "2", "ONESTOP_DISPATCH__BACKOFF_INITIAL_S": "0.01",
            "ONESTOP_DISPATCH__BACKOFF_MAX_S": "0.05", "ONESTOP_DISPATCH__RETRY_DELAYS_S": "[1.0, 1.0]",
            "ONESTOP_LOG__LEVEL": "INFO", "ONESTOP_LOG__FORMAT": "json",
        }

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "bridge.cli", *command],
                                            env=self.env(), cwd=self.workdir, stdout=log,
                                            stderr=subprocess.STDOUT)

    def _ready(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.bridge_url}/readyz", timeout=2).status_code == 200
        return False

    def _create_source_db(self) -> str:
        return self.pg.create_database(self.prefix, REFERENCE_SQL.read_text(encoding="utf-8"))

    # --- the one-stop desk: dossier rows ----------------------------------------------------
    def insert(self, *, status: int, phone: str | None, code_suffix: str | None = None) -> tuple[int, str]:
        n = next(self._ids)
        code = f"000.00.23.H39-261127-{code_suffix or f'{n:04d}'}"
        now = datetime.now(UTC)
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                "applicant_name, applicant_phone, status, received_at, due_at) "
                "VALUES (%s, '1.001193', 'Đăng ký khai sinh', 'UBND xã Long Trạch', "
                "'Nguyễn Văn An', %s, %s, %s, %s) RETURNING id",
                (code, phone, status, now, now + timedelta(days=3)))
            dossier_id = cur.fetchone()[0]
        return int(dossier_id), code

    def set_status(self, dossier_id: int, status: int, note: str | None = None) -> None:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute("UPDATE dossiers SET status = %s, note = %s, updated_at = now(), "
                        "finished_at = CASE WHEN %s >= 9 THEN now() END WHERE id = %s",
                        (status, note, status, dossier_id))

    # --- observing ----------------------------------------------------------------------------
    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    @property
    def capture_url(self) -> str:
        return f"http://127.0.0.1:{self.capture_port}"

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def scrape(self, url: str | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        body = httpx.get(f"{url or self.bridge_url}/metrics", timeout=5).text
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.scrape().items() if n == name and want <= ls)

    def ledger_rows(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.ledger_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), params))
        finally:
            engine.dispose()

    def notification(self, code: str, kind: str) -> Any:
        rows = self.ledger_rows("SELECT * FROM notifications WHERE dossier_code = :c AND kind = :k",
                                c=code, k=kind)
        return rows[0] if rows else None

    def wait_status(self, code: str, kind: str, status: str, timeout: float = 30) -> Any:
        return wait_for(lambda: (row := self.notification(code, kind)) is not None
                        and row.status == status and row, timeout=timeout,
                        message=f"{code} {kind} → {status}")

    def user_event(self, **event: Any) -> None:
        assert self.sandbox is not None
        httpx.post(f"{self.sandbox.url}/sandbox/user-event", json=event, timeout=10).raise_for_status()

    def link_code(self, phone: str) -> str | None:
        """The latest link code ZNS delivered to `phone` (what its owner reads in Zalo)."""
        assert self.sandbox is not None
        sent = httpx.get(f"{self.sandbox.url}/sandbox/messages", timeout=10,
                         params={"channel": "zns", "phone": phone}).json()
        codes = [m["template_data"]["otp"] for m in sent if "otp" in (m.get("template_data") or {})]
        return codes[-1] if codes else None

    def produce_raw(self, value: bytes, key: bytes = b"garbage") -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.broker.bootstrap})
        producer.produce(f"{self.prefix}.public.dossiers", value=value, key=key)
        assert producer.flush(10) == 0


def link_follower(system: System, user_id: str = OA_USER, phone: str = PHONE_OA) -> None:
    """A citizen follows the OA and shares the phone number (Zalo's user_submit_info).

    Through the bridge's webhook when the citizen side is installed; otherwise through
    the ledger's follower store, which is what that webhook calls.
    """
    if citizen_webhook_installed():
        system.user_event(event_name="follow", user_id=user_id)
        system.user_event(event_name="user_submit_info", user_id=user_id, phone=phone,
                          name="Nguyễn Văn An")
        system.user_event(event_name="user_send_text", user_id=user_id,
                          text=wait_for(lambda: system.link_code(phone), timeout=20,
                                        message="the link code ZNS delivered"))
    else:
        from bridge.ledger import LedgerFollowers
        from bridge.ledger.engine import make_engine

        engine = make_engine(system.ledger_url, pool_size=1)
        LedgerFollowers(engine).link(user_id, phone)
        engine.dispose()
    wait_for(lambda: system.ledger_rows("SELECT 1 FROM follower_links WHERE phone = :p", p=phone),
             timeout=20, message="follower link in the ledger")


def json_lines(text_: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text_.splitlines() if line.startswith("{")]
