"""``POST /webhook/zalo``: verify, store durably, answer 200 — all within 2 s.

Order of checks (each refusal counted in ``onestop_webhook_requests_total{result}``):
body over 64 KiB → 413 ``too_large``; signature missing or wrong → 401 ``bad_signature``
(whatever the body: the signature is checked first); signed but not a JSON object → 400
``bad_json``; a signed `timestamp` over a day old or ten minutes
ahead (a replayed request) → 200 ``stale``, dropped; already in the inbox (a Zalo retry) →
200 ``duplicate``; stored → 200 ``accepted``. If the inbox write does not finish within
`write_budget_s` the answer is 503 ``unavailable`` so that Zalo retries later rather
than the request timing out; a late write is then caught by the dedupe. No work for the
citizen happens before the answer: the event goes to the `Processor`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from bridge import metrics
from bridge.citizen.inbox import Inbox, InboxEvent, event_key, user_key
from bridge.citizen.processor import Processor
from bridge.citizen.signature import SignatureConfig, verify
from bridge.citizen.writer import InboxWriter

log = logging.getLogger(__name__)
PATH = "/webhook/zalo"
MAX_BODY = 64 * 1024
# Zalo retries an event for an hour (twelve, by one account): a day covers any retry, and
# the inbox remembers events for a month (service.INBOX_RETENTION_S), so a request replayed
# later than this is refused and one replayed sooner is a duplicate.
MAX_AGE_S = 86400.0
MAX_AHEAD_S = 600.0  # clocks differ a little
_KEPT_HEADERS = ("x-zevent-server", "num_retry")


def _answer(result: str, status: int) -> web.Response:
    metrics.webhook_requests.labels(result=result).inc()
    body = {"ok": True} if status == 200 else {"error": result}
    return web.json_response(body, status=status)


def stale(timestamp: Any, now_s: float) -> bool:
    """A signed epoch-ms `timestamp` outside [now - MAX_AGE_S, now + MAX_AHEAD_S]? One that is
    absent or not a number was signed as such by Zalo, and is not judged."""
    try:
        sent_s = int(str(timestamp)) / 1000
    except ValueError:
        return False
    return not now_s - MAX_AGE_S <= sent_s <= now_s + MAX_AHEAD_S


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


async def _read_limited(request: web.Request) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY (read no further than that)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(16 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)


class Webhook:
    def __init__(self, signing: SignatureConfig, inbox: Inbox, processor: Processor, *,
                 write_budget_s: float = 1.5) -> None:
        self.signing = signing
        self.inbox = inbox
        self.processor = processor
        self.write_budget_s = write_budget_s
        self._writer = InboxWriter(inbox)
        self._variants_seen: set[str] = set()
        if not signing.usable:
            log.error("zalo.oa_secret_key (or zalo.app_id) is not configured: every webhook "
                      "request will be refused with 401")

    def install(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    def close(self) -> None:
        self._writer.close()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await _read_limited(request)
        if raw is None:
            return _answer("too_large", 413)
        body = _json_object(raw)
        timestamp = body.get("timestamp") if body is not None else None
        variant = verify(self.signing, request.headers.get("X-ZEvent-Signature"), raw,
                         "" if timestamp is None else str(timestamp))
        if variant is None:
            log.warning("webhook refused: bad or missing signature",
                        extra={"event": str((body or {}).get("event_name"))[:64]})
            return _answer("bad_signature", 401)
        if body is None:  # signed by someone who has the secret, but not an event
            return _answer("bad_json", 400)
        self._note_variant(variant)
        if stale(timestamp, self.inbox.clock()):
            log.warning("webhook event dropped: its signed timestamp is over a day old or ahead of "
                        "this host's clock (a replayed request, or a wrong clock here)",
                        extra={"event": str(body.get("event_name"))[:64], "timestamp": str(timestamp)[:20]})
            return _answer("stale", 200)
        return await self._store(request, raw, body, variant)

    async def _store(self, request: web.Request, raw: bytes, body: dict[str, Any],
                     variant: str) -> web.Response:
        name = str(body.get("event_name") or "unknown")
        key, user = event_key(body, raw), user_key(body, self.signing.oa_id)
        headers = {h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers}
        write = self._writer.submit(self.inbox.values(key, name, user, raw, variant, headers))
        try:
            seq = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(write)),
                                         self.write_budget_s)
        except asyncio.TimeoutError:
            log.error("webhook inbox write too slow; answered 503 so that Zalo retries")
            return _answer("unavailable", 503)
        except Exception:
            log.exception("webhook inbox write failed; answered 503 so that Zalo retries")
            return _answer("unavailable", 503)
        if seq is None:
            return _answer("duplicate", 200)
        received_ms = int(self.inbox.clock() * 1000)
        self.processor.submit(InboxEvent(seq, name, user, body, received_ms, headers))
        return _answer("accepted", 200)

    def _note_variant(self, variant: str) -> None:
        if variant not in self._variants_seen:
            self._variants_seen.add(variant)
            log.info("webhook signature variant in use", extra={"variant": variant})
