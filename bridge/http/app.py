"""The aiohttp application: Prometheus metrics, liveness and readiness.

- ``/metrics`` — the bridge's metrics (``bridge.metrics.bridge_registry``), Prometheus text format.
- ``/healthz`` — liveness: each named loop (consumer, workers) made progress within
  ``stuck_after_s``. 200 or 503, JSON body naming the stuck loops.
- ``/readyz`` — readiness: every check (broker reachable, ledger writable, a valid Zalo
  token …) passes within ``check_timeout_s``. 200 or 503, JSON details per check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge import metrics
from bridge.logs import redact_text
from bridge.settings import Settings

# A check returns a short detail when fine and raises when not.
Check = Callable[[], str | None]


@dataclass
class AppContext:
    """What route handlers may use. Fields other than `settings` may be None in tests."""

    settings: Settings
    ledger: Any = None            # bridge.ledger.Ledger
    dispatcher: Any = None        # bridge.dispatch.Dispatcher
    followers: Any = None         # bridge.ledger.LedgerFollowers
    token_store: Any = None       # bridge.ledger.LedgerTokenStore
    loops: Sequence[str] = ()     # heartbeat loop names /healthz watches
    readiness: dict[str, Check] = field(default_factory=dict)
    stuck_after_s: float = 120.0
    check_timeout_s: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)  # for installers' own state


RouteInstaller = Callable[[web.Application, AppContext], None]
CONTEXT_KEY = web.AppKey("onestop_context", AppContext)
_BRIDGE_METRICS = metrics.bridge_registry()


def build_app(ctx: AppContext, extra_routes: Sequence[RouteInstaller] = ()) -> web.Application:
    app = web.Application()
    app[CONTEXT_KEY] = ctx
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    for install in extra_routes:
        install(app, ctx)
    return app


async def _metrics(_request: web.Request) -> web.Response:
    body = generate_latest(_BRIDGE_METRICS)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def heartbeat_ages(loops: Sequence[str], now: float | None = None) -> dict[str, float | None]:
    """Seconds since each loop's last heartbeat (None: never beat)."""
    now = time.time() if now is None else now
    seen: dict[str, float] = {}
    for family in metrics.loop_heartbeat.collect():
        for sample in family.samples:
            seen[sample.labels.get("loop", "")] = sample.value
    return {name: (now - seen[name]) if name in seen else None for name in loops}


async def _healthz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    ages = heartbeat_ages(ctx.loops)
    stuck = {name: ("never started" if age is None else f"no progress for {age:.0f} s")
             for name, age in ages.items() if age is None or age > ctx.stuck_after_s}
    body = {"status": "ok" if not stuck else "stuck", "stuck": stuck,
            "loops": {name: None if age is None else round(age, 1) for name, age in ages.items()}}
    return web.json_response(body, status=200 if not stuck else 503)


async def _readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    names = list(ctx.readiness)
    results = await asyncio.gather(*(_run_check(ctx.readiness[n], ctx.check_timeout_s)
                                     for n in names))
    checks = dict(zip(names, results))
    ready = all(result["ok"] for result in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def _run_check(check: Check, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    try:
        detail = await asyncio.wait_for(loop.run_in_executor(None, check), timeout)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer within {timeout:.0f} s"}
    except Exception as exc:  # the check's message is the operator's hint
        # Served to whoever asks: the same redaction as a log line.
        return {"ok": False, "detail": redact_text(f"{type(exc).__name__}: {exc}")[:300]}
    return {"ok": True, "detail": detail or "ok"}
