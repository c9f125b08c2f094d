"""The `onestop-bridge run` hook (see bridge/http/routes.py): ``POST /webhook/zalo``.

Builds the citizen side on the bridge's own ledger and dispatcher, starts its workers
with the HTTP server and stops them when the server shuts down. Adds a readiness check
that reports the webhook backlog (and fails only if the inbox cannot be read).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bridge.citizen.service import Citizen
from bridge.http.app import AppContext

log = logging.getLogger(__name__)
CITIZEN_KEY = web.AppKey("onestop_citizen", Citizen)


def install(app: web.Application, ctx: AppContext) -> None:
    if ctx.ledger is None or ctx.dispatcher is None:
        log.warning("citizen side not installed: the HTTP app has no ledger or dispatcher")
        return
    citizen = Citizen(ctx.settings, ctx.ledger.engine, ctx.dispatcher)
    citizen.install(app)
    app[CITIZEN_KEY] = citizen
    ctx.extra["citizen"] = citizen
    ctx.readiness["webhook_inbox"] = lambda: _backlog(citizen)

    async def start(_app: web.Application) -> None:
        recovered = await asyncio.get_running_loop().run_in_executor(None, citizen.start)
        log.info("citizen side started", extra={"recovered": recovered})

    async def stop(_app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, citizen.stop, 5.0)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _backlog(citizen: Citizen) -> str:
    counts = citizen.inbox.counts()
    return (f"{citizen.processor.backlog()} events in progress, {counts.get('new', 0)} waiting, "
            f"{counts.get('failed', 0)} failed")
