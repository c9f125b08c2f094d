"""The bridge's HTTP server: /metrics, /healthz, /readyz, plus routes other parts install.

Adding routes (e.g. the citizen side's ``POST /webhook/zalo``): write

    # bridge/citizen/routes.py
    from aiohttp import web
    from bridge.http import AppContext

    def install(app: web.Application, ctx: AppContext) -> None:
        app.router.add_post("/webhook/zalo", make_handler(ctx.ledger, ctx.dispatcher, ...))

and `onestop-bridge run` picks it up (see `bridge.http.routes.INSTALLERS`; a module that
exists but fails to import stops the bridge loudly). Tests and other programs can pass
installers directly: ``build_app(ctx, extra_routes=[install])``. Handlers run on the
server's own event loop thread: do blocking work (ledger, dispatcher) with
``await asyncio.get_running_loop().run_in_executor(None, fn)``.
"""

from __future__ import annotations

from bridge.http.app import AppContext, RouteInstaller, build_app
from bridge.http.server import HttpServer

__all__ = ["AppContext", "HttpServer", "RouteInstaller", "build_app"]
