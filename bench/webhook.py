"""Webhook answer time while the dispatcher is saturated: 1,000 signed events.

The bridge's real HTTP app (`bridge.http.build_app` + the citizen installer, as
`onestop-bridge run` serves it) with a SQLite ledger; the dispatcher talks to the Zalo
sandbox through an OA limiter of 60 requests/minute and a sandbox that answers in 200 ms,
so replies pile up far behind the arrivals. 1,000 `user_send_text` events from 250
citizens are posted at a concurrency of 50 (aiohttp client), signed as Zalo signs them.

Prints p50/p95/p99/max answer time, the count of 200s, the events stored in the inbox and
the backlog still waiting for the dispatcher (proof of saturation). Target: every answer
< 2 s (Zalo's deadline), p99 well under it.

    .venv/bin/python bench/webhook.py [--events 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.citizen import routes  # noqa: E402
from bridge.dispatch import build_dispatcher, sandbox_settings  # noqa: E402
from bridge.http import AppContext, HttpServer, build_app  # noqa: E402
from bridge.ledger import Ledger, LedgerFollowers, LedgerTokenStore  # noqa: E402
from bridge.sandbox import run_in_thread  # noqa: E402
from bridge.sandbox.signing import signature_header  # noqa: E402
from bridge.settings import load_settings  # noqa: E402

APP_ID, OA_SECRET, OA_ID = "sandbox-app", "sandbox-oa-secret", "1032900368640139458"


@dataclass
class Result:
    events: int
    ok: int
    stored: int
    backlog: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float

    def lines(self) -> list[str]:
        return [f"webhook: {self.events} signed events in {self.wall_s:.2f}s "
                f"({self.events / self.wall_s:,.0f}/s), {self.ok} answered 200, "
                f"{self.stored} stored in the inbox",
                f"answer time: p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, "
                f"p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms (Zalo's limit: 2,000 ms)",
                f"dispatcher saturated: {self.backlog} events still waiting for a reply slot"]


def _body(i: int) -> bytes:
    event = {"app_id": APP_ID, "sender": {"id": f"load-{i % 250}"}, "recipient": {"id": OA_ID},
             "event_name": "user_send_text", "timestamp": str(int(time.time() * 1000)),
             "message": {"text": "hỗ trợ", "msg_id": f"load-msg-{i}"}}
    return json.dumps(event, ensure_ascii=False).encode()


async def _fire(url: str, events: int, concurrency: int) -> tuple[list[float], int]:
    times: list[float] = []
    ok = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while not queue.empty():
            i = queue.get_nowait()
            raw = _body(i)
            stamp = json.loads(raw)["timestamp"]
            headers = {"Content-Type": "application/json",
                       "X-ZEvent-Signature": signature_header(APP_ID, raw, stamp, OA_SECRET)}
            started = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as resp:
                await resp.read()
                ok += resp.status == 200
            times.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return times, ok


def run_load(workdir: Path, events: int = 1000, concurrency: int = 50) -> Result:
    sandbox = run_in_thread(scenario={"implicit_followers": True, "latency_ms": 200,
                                      "delivery_webhooks": False})
    settings = sandbox_settings(load_settings(
        ledger={"url": f"sqlite:///{workdir / 'ledger.db'}"}, http={"host": "127.0.0.1", "port": 0},
        zalo={"app_id": APP_ID, "oa_secret_key": OA_SECRET, "oa_rate_per_minute": 60},
        oa={"oa_id": OA_ID, "webhook_workers": 4}), sandbox.url)
    ledger = Ledger.open(settings.ledger.url)
    dispatcher = build_dispatcher(settings, followers=LedgerFollowers(ledger.engine),
                                  token_store=LedgerTokenStore(ledger.engine), max_rate_wait_s=30)
    ctx = AppContext(settings, ledger=ledger, dispatcher=dispatcher)
    server = HttpServer(build_app(ctx, [routes.install]), "127.0.0.1", 0).start()
    citizen = ctx.extra["citizen"]
    try:
        started = time.perf_counter()
        times, ok = asyncio.run(_fire(server.url + "/webhook/zalo", events, concurrency))
        wall = time.perf_counter() - started
        backlog = citizen.processor.backlog()
        stored = sum(citizen.inbox.counts().values())
    finally:
        citizen.processor.stopping.set()   # do not wait for the saturated replies
        server.stop()
        dispatcher.close()
        ledger.close()
        sandbox.stop()
    ms = sorted(t * 1000 for t in times)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return Result(events, ok, stored, backlog, statistics.median(ms), q[94], q[98], ms[-1], wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_load(Path(tmp), args.events, args.concurrency)
    for line in result.lines():
        print(line)
    print(json.dumps(result.__dict__), file=sys.stderr)
    return 0 if result.ok == result.events and result.max_ms < 2000 else 1


if __name__ == "__main__":
    sys.exit(main())
