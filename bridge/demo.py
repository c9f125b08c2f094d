"""`onestop-bridge demo` (`make demo`): the whole pipeline on one machine.

Starts an embedded Kafka-protocol broker, a throwaway PostgreSQL with the
reference schema, the Zalo/SMS sandbox, the connector (`capture`) and the bridge
(`run`) as real processes, then plays a realistic day of dossiers into the
database. It prints, as it happens, what citizens receive (phones masked) and a
closing summary: messages by channel and kind, failures, cost, VND saved.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bridge.demo_show import print_message, print_summary
from bridge.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from bridge.phone import normalise_phone
from bridge.samples import VN, DayPlan, RowChange, day_of_changes, is_working_day

ROOT_SQL = Path(__file__).resolve().parent.parent / "schemas" / "reference.sql"
COLUMNS = ("id", "code", "procedure_code", "procedure_name", "agency_name", "applicant_name",
           "applicant_phone", "status", "received_at", "due_at", "finished_at", "fee_amount",
           "note", "updated_at")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop-bridge demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=80, help="dossiers in the day (default 80)")
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="how long the day takes to play (default 45)")
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the ledger and the processes' logs in DIR (default: temporary)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8", line_buffering=True)  # type: ignore[union-attr]
    with contextlib.ExitStack() as stack:
        stack.enter_context(_stop_on_sigterm())
        try:
            return _demo(stack, args)
        except KeyboardInterrupt:
            print("\nĐã dừng theo yêu cầu (Ctrl-C); đang tắt các dịch vụ…")
            return 130


def _demo(stack: contextlib.ExitStack, args: argparse.Namespace) -> int:
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="onestop-demo-")))
    print("Khởi động: Kafka (tansu), PostgreSQL, hộp cát Zalo/SMS, connector và bridge…")
    broker = EmbeddedBroker().start()
    stack.callback(broker.stop)
    pg = EmbeddedPostgres().start()
    stack.callback(pg.stop)
    dsn = pg.create_database("onestop", ROOT_SQL.read_text(encoding="utf-8"))
    _create_topic(broker.bootstrap, "onestop.public.dossiers")
    plan = DayPlan(seed=args.seed, dossiers=args.dossiers, day=_desk_day())
    changes = list(day_of_changes(plan))
    http_port = free_port()
    from bridge.sandbox import run_in_thread

    sandbox = run_in_thread(scenario=_scenario(changes),
                            webhook_url=f"http://127.0.0.1:{http_port}/webhook/zalo")
    stack.callback(sandbox.stop)
    env = _environment(dsn, broker.bootstrap, workdir, http_port)
    for command in (["capture", "--metrics-port", str(free_port())],
                    ["run", "--sandbox", sandbox.url]):
        stack.enter_context(_process(command, env, workdir))
    _wait_ready(http_port, workdir / "run.log")
    followers, without_zalo, linked_at = _link_followers(sandbox.url, changes)
    print(f"{followers} người dân đã quan tâm Zalo OA, chia sẻ số điện thoại và xác nhận bằng "
          f"mã Zalo gửi đến số đó; {without_zalo} người có số chưa dùng Zalo sẽ nhận thông báo "
          "qua SMS.\n")
    print(f"[{time.strftime('%H:%M:%S')}] Bắt đầu một ngày làm việc: {args.dossiers} hồ sơ, "
          f"{len(changes)} lần cập nhật trạng thái trong {args.seconds:.0f} giây.\n")
    seen = _watch_messages(sandbox.url, stack, linked_at)
    _play_day(dsn, changes, args.seconds)
    _wait_quiet(sandbox.url, seen)
    print_summary(workdir / "ledger.db", plan, _dead_lettered(http_port))
    return 0


def _desk_day() -> datetime:
    """The demo plays today (the latest working day): the dossiers it writes now get dates
    of now, so `onestop-bridge report` on a kept ledger reads their appointments rightly."""
    day = datetime.now(VN).date()
    while not is_working_day(day):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 7, 30, tzinfo=VN)


def _dead_lettered(port: int) -> dict[str, int]:
    """What the bridge parked in the dead-letter topic, by reason (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {sample.labels["reason"]: int(sample.value)
            for family in text_string_to_metric_families(body) for sample in family.samples
            if sample.name == "onestop_dlq_records_total"}


def _create_topic(bootstrap: str, topic: str) -> None:
    """As a deployment's topic job does: the bridge waits for its topic rather than guess it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    futures[topic].result(timeout=30)


def _scenario(changes: list[RowChange]) -> dict[str, Any]:
    """Every seventh applicant's number has no Zalo account: those notices go by SMS."""
    phones = {p for c in changes if (p := normalise_phone(c.row["applicant_phone"]))}
    return {"phones": {p: {"has_zalo": False} for p in sorted(phones) if int(p[-2:]) % 7 == 0}}


def _environment(dsn: str, bootstrap: str, workdir: Path, http_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "ONESTOP_SOURCE__DSN": dsn, "ONESTOP_SOURCE__TABLES": "public.dossiers",
        "ONESTOP_SOURCE__SLOT": "onestop_demo", "ONESTOP_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        # As deploy/config: fee_amount's scale travels in the schema (precise decimals).
        "ONESTOP_SOURCE__SCHEMAS_ENABLE": "true",
        "ONESTOP_KAFKA__EXTRA": ('{"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, '
                                 '"max.poll.interval.ms": 10000}'),
        "ONESTOP_LEDGER__URL": f"sqlite:///{workdir / 'ledger.db'}",
        "ONESTOP_HTTP__HOST": "127.0.0.1", "ONESTOP_HTTP__PORT": str(http_port),
        "ONESTOP_ZALO__APP_ID": "sandbox-app", "ONESTOP_ZALO__OA_SECRET_KEY": "sandbox-oa-secret",
        "ONESTOP_LOG__LEVEL": "WARNING",
    }


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], workdir: Path) -> Iterator[None]:
    log = open(workdir / f"{command[0]}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", *command], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if proc.returncode not in (0, -signal.SIGTERM):
            print(f"(onestop-bridge {command[0]} exited with {proc.returncode}; "
                  f"log: {workdir / (command[0] + '.log')})")


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_ready(port: int, log: Path, timeout: float = 90.0) -> None:
    deadline, answer = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            reply = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if reply.status_code == 200:
                return
            answer = reply.text
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"the bridge did not become ready within {timeout:.0f} s: {answer}\n{tail}")


def _link_followers(sandbox_url: str, changes: list[RowChange]) -> tuple[int, int, int]:
    """About a third of citizens follow the OA, share their phone and type back the code
    Zalo delivers to it (the free channel); a number without Zalo gets no code. Returns
    how many linked, how many could not, and the sandbox's last message sequence then."""
    users: dict[str, str] = {}
    phones = sorted({c.row["applicant_phone"] for c in changes if c.row["applicant_phone"]})
    for n, raw in enumerate(phones):
        phone = normalise_phone(raw)
        if phone is None or n % 3:
            continue
        users[phone] = f"80{phone}"
        for event in ({"event_name": "follow", "user_id": users[phone]},
                      {"event_name": "user_submit_info", "user_id": users[phone], "phone": phone}):
            httpx.post(f"{sandbox_url}/sandbox/user-event", json=event, timeout=10)
    # Each gets welcome, the share card, then "a code was sent" or "no code could be".
    _until(lambda: all(len(_messages(sandbox_url, user_id=u)) >= 3 for u in users.values()))
    codes = {m["phone"]: m["template_data"]["otp"] for m in _messages(sandbox_url, channel="zns")
             if "otp" in (m.get("template_data") or {}) and m["phone"] in users}
    for phone, code in codes.items():
        httpx.post(f"{sandbox_url}/sandbox/user-event", timeout=10, json={
            "event_name": "user_send_text", "user_id": users[phone], "text": code})
    linking = {users[phone] for phone in codes}
    _until(lambda: linking <= {m["user_id"] for m in _messages(sandbox_url, channel="zalo_oa")
                               if "đã được liên kết" in (m.get("text") or "")})
    last = _messages(sandbox_url)
    return len(codes), len(users) - len(codes), last[-1]["seq"] if last else 0


def _until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)


def _messages(sandbox_url: str, **filters: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sandbox_url}/sandbox/messages", params=filters, timeout=10).json())


def _watch_messages(sandbox_url: str, stack: contextlib.ExitStack, after: int) -> dict[str, int]:
    """Print every message the sandbox accepts after sequence `after`, as it happens."""
    seen = {"count": 0, "last_seq": after}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                batch = _messages(sandbox_url, after=str(seen["last_seq"]))
                for message in batch:
                    seen["last_seq"] = max(seen["last_seq"], int(message.get("seq", 0)))
                    if message.get("tracking_id"):
                        seen["count"] += 1
                        print_message(message)
            stop.wait(0.3)

    thread = threading.Thread(target=loop, name="demo-printer", daemon=True)
    thread.start()
    stack.callback(thread.join, 5)
    stack.callback(stop.set)
    return seen


def _play_day(dsn: str, changes: list[RowChange], seconds: float) -> None:
    import psycopg2

    pause = seconds / max(len(changes), 1)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True  # one commit per change, as the desk software does
    try:
        with conn.cursor() as cur:
            for change in changes:
                values = [change.row[c] for c in COLUMNS]
                if change.op == "c":
                    cur.execute(f"INSERT INTO dossiers ({', '.join(COLUMNS)}) "
                                f"VALUES ({', '.join(['%s'] * len(COLUMNS))})", values)
                else:
                    sets = ", ".join(f"{c} = %s" for c in COLUMNS[1:])
                    cur.execute(f"UPDATE dossiers SET {sets} WHERE id = %s", values[1:] + [values[0]])
                time.sleep(pause)
    finally:
        conn.close()


def _wait_quiet(sandbox_url: str, seen: dict[str, int], quiet_s: float = 6.0,
                timeout: float = 120.0) -> None:
    """The day is over when no new message has arrived for a few seconds."""
    deadline = time.monotonic() + timeout
    last, since = seen["count"], time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        if seen["count"] != last:
            last, since = seen["count"], time.monotonic()
