"""Fixtures of the citizen tests (helpers live in citizen_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from citizen_harness import Bridge, MakeBridge, citizen_settings

from bridge.citizen.service import Citizen
from bridge.dispatch import build_dispatcher
from bridge.http import AppContext, HttpServer, build_app
from bridge.ledger import Ledger, LedgerFollowers, LedgerTokenStore
from bridge.sandbox import run_in_thread

@pytest.fixture
def make_bridge(tmp_path: Path) -> Iterator[MakeBridge]:
    started: list[Bridge] = []

    def factory(*, scenario: dict[str, Any] | None = None, sender: Any = None,
                workers: int = 4, start: bool = True, **oa: Any) -> Bridge:
        sandbox = run_in_thread(scenario={"implicit_followers": True, **(scenario or {})})
        settings = citizen_settings(tmp_path / f"b{len(started)}", sandbox.url,
                                    webhook_workers=workers, **oa)
        ledger = Ledger.open(settings.ledger.url)
        dispatcher = build_dispatcher(settings, followers=LedgerFollowers(ledger.engine),
                                      token_store=LedgerTokenStore(ledger.engine))
        citizen = Citizen(settings, ledger.engine, sender or dispatcher, backoff_s=0.05)

        def install(app: web.Application, _ctx: AppContext) -> None:
            citizen.install(app)  # as bridge.citizen.routes does, with the test's own citizen

        # The bridge's own HTTP app and server (what `onestop-bridge run` serves).
        ctx = AppContext(settings, ledger=ledger, dispatcher=dispatcher)
        server = HttpServer(build_app(ctx, [install]), "127.0.0.1", 0).start()
        if start:  # start=False: a bridge that dies right after answering (crash tests)
            citizen.start()
        sb = httpx.Client(base_url=sandbox.url, timeout=10)
        sb.put("/sandbox/webhook", json={"url": server.url + "/webhook/zalo"}).raise_for_status()
        bridge = Bridge(settings, sandbox, ledger, dispatcher, citizen, server, sb,
                        httpx.Client(base_url=server.url, timeout=10))
        started.append(bridge)
        return bridge

    yield factory
    for b in started:
        b.citizen.stop(5)
        b.server.stop()
        b.dispatcher.close()
        b.sb.close()
        b.http.close()
        b.sandbox.stop()
        b.ledger.close()


@pytest.fixture
def oa(make_bridge: MakeBridge) -> Bridge:
    return make_bridge()
