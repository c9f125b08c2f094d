"""The bridge's HTTP server: metrics, liveness, readiness, and routes installed by others."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from bridge import metrics
from bridge.http import AppContext, HttpServer, build_app
from bridge.http.routes import default_installers
from bridge.settings import Settings


@pytest.fixture()
def serve() -> Iterator:
    servers: list[HttpServer] = []

    def start(ctx: AppContext, extra=()) -> httpx.Client:
        server = HttpServer(build_app(ctx, extra), "127.0.0.1", 0).start()
        servers.append(server)
        return httpx.Client(base_url=server.url, timeout=10)

    yield start
    for server in servers:
        server.stop()


def test_metrics_are_served_in_prometheus_text_format(serve) -> None:
    metrics.retry_scheduled.inc(0)
    client = serve(AppContext(Settings()))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "onestop_retry_scheduled_total" in response.text
    assert "onestop_in_flight_notifications" in response.text


def test_metrics_leave_out_the_connectors_families(serve) -> None:
    """`run` never fills them: its `onestop_capture_connected 0` fired OnestopConnectorDown
    against the bridge's own scrape target, for ever (the rule has no job filter, since the
    connector's job name is the deployment's choice)."""
    client = serve(AppContext(Settings()))
    text = client.get("/metrics").text
    assert "onestop_capture_" not in text
    assert 'onestop_build_info{version=' in text



def test_healthz_names_the_loop_that_is_stuck(serve) -> None:
    metrics.loop_heartbeat.labels(loop="t-consumer").set(time.time())
    metrics.loop_heartbeat.labels(loop="t-worker-0").set(time.time() - 600)
    client = serve(AppContext(Settings(), loops=["t-consumer", "t-worker-0", "t-worker-1"],
                              stuck_after_s=60))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert set(body["stuck"]) == {"t-worker-0", "t-worker-1"}
    assert "no progress for 600 s" in body["stuck"]["t-worker-0"]
    assert body["stuck"]["t-worker-1"] == "never started"

    metrics.loop_heartbeat.labels(loop="t-worker-0").set(time.time())
    metrics.loop_heartbeat.labels(loop="t-worker-1").set(time.time())
    assert client.get("/healthz").status_code == 200


def test_readyz_reports_each_check(serve) -> None:
    def broken() -> str:
        raise RuntimeError("broker not reachable (GET /oa?access_token=AT-9f8e7d6c, 0909123456)")

    def slow() -> str:
        time.sleep(3)
        return "late"

    ctx = AppContext(Settings(), readiness={"ledger": lambda: "sqlite", "broker": broken,
                                            "zalo_token": slow}, check_timeout_s=0.5)
    client = serve(ctx)
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["ledger"] == {"ok": True, "detail": "sqlite"}
    assert checks["broker"]["ok"] is False and "broker not reachable" in checks["broker"]["detail"]
    # Served to anyone who asks: redacted like a log line.
    assert "AT-9f8e7d6c" not in checks["broker"]["detail"] and "0909123456" not in checks["broker"]["detail"]
    assert checks["zalo_token"]["ok"] is False and "no answer" in checks["zalo_token"]["detail"]

    ok = serve(AppContext(Settings(), readiness={"ledger": lambda: None}))
    assert ok.get("/readyz").json() == {"ready": True, "checks": {"ledger": {"ok": True,
                                                                           "detail": "ok"}}}


def test_other_parts_install_their_routes(serve) -> None:
    def install(app: web.Application, ctx: AppContext) -> None:
        async def webhook(request: web.Request) -> web.Response:
            return web.json_response({"oa": ctx.settings.oa.oa_id, "got": await request.json()})

        app.router.add_post("/webhook/zalo", webhook)

    client = serve(AppContext(Settings()), [install])
    response = client.post("/webhook/zalo", json={"event_name": "follow"})
    assert response.json() == {"oa": Settings().oa.oa_id, "got": {"event_name": "follow"}}


def test_route_installers_are_found_by_module_path() -> None:
    assert default_installers(["bridge.no_such_part.routes:install"]) == []
    [found] = default_installers(["bridge.http.app:build_app"])
    assert found is build_app
    with pytest.raises(ImportError):
        default_installers(["bridge.http.app:no_such_function"])
