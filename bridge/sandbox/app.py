"""The sandbox's aiohttp application: every route of the imitated hosts on one server."""

from __future__ import annotations

from aiohttp import web

from bridge.sandbox import control, oa, oauth, sms, zns
from bridge.sandbox.common import SENDER, STATE, ZaloHandler, zalo_api
from bridge.sandbox.codes import Host
from bridge.sandbox.state import SandboxState
from bridge.sandbox.webhooks import WebhookSender

# (method, path, host, handler) for the Zalo API paths (rate-limited, access_token required).
ZALO_ROUTES: list[tuple[str, str, Host, ZaloHandler]] = [
    ("POST", "/v3.0/oa/message/cs", "oa", oa.send_cs),
    ("POST", "/v3.0/oa/message/template", "oa", oa.send_template),
    ("GET", "/v3.0/oa/user/detail", "oa", oa.user_detail),
    ("POST", "/v3.0/oa/message/transaction", "oa", oa.discontinued),
    ("POST", "/v3.0/oa/message/promotion", "oa", oa.discontinued),
    ("POST", "/v2.0/oa/message", "oa", oa.v2_message),
    ("POST", "/message/template", "zns", zns.send_template),
    ("GET", "/message/quota", "zns", zns.quota),
    ("GET", "/message/status", "zns", zns.status),
    ("GET", "/template/info/v2", "zns", zns.template_info),
]


def make_app(state: SandboxState) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    app[SENDER] = WebhookSender(state)
    for method, path, host, handler in ZALO_ROUTES:
        app.router.add_route(method, path, zalo_api(path, host, handler))
    app.router.add_post("/v4/oa/access_token", oauth.access_token)
    app.router.add_post(sms.PATH, sms.send)
    app.router.add_get("/sandbox/messages", control.messages)
    app.router.add_post("/sandbox/reset", control.reset)
    app.router.add_get("/sandbox/scenario", control.get_scenario)
    app.router.add_put("/sandbox/scenario", control.put_scenario)
    app.router.add_post("/sandbox/expire-tokens", control.expire_tokens)
    app.router.add_get("/sandbox/stats", control.stats)
    app.router.add_get("/sandbox/refresh-token", control.refresh_token)
    app.router.add_post("/sandbox/user-event", control.user_event)
    app.router.add_get("/sandbox/webhooks", control.webhooks)
    app.router.add_put("/sandbox/webhook", control.put_webhook)
    app.router.add_get("/sandbox/health", control.health)
    app.on_startup.append(_start_sender)
    app.on_cleanup.append(_close_sender)
    return app


async def _start_sender(app: web.Application) -> None:
    await app[SENDER].start()


async def _close_sender(app: web.Application) -> None:
    await app[SENDER].close()
