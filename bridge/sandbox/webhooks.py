"""Signed webhook events, delivered the way Zalo does (zalo-api.md §7).

Each event is serialised once; every attempt sends the same bytes and the same
``X-ZEvent-Signature: mac=<sha256(app_id + body + timestamp + oa_secret_key)>``.  A non-200
answer or one slower than ``webhook_timeout_s`` (2 s) is retried after each delay in
``webhook_retry_delays_s`` with a ``num_retry`` header, then given up.  Sends are scheduled on
the event loop and never block request handling.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bridge.sandbox.signing import signature_header
from bridge.sandbox.state import SandboxState


def dump_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookSender:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=200)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def cancel_pending(self) -> None:
        """Drop scheduled deliveries and retries (used by /sandbox/reset)."""
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()

    @property
    def pending(self) -> int:
        return len(self._timers) + len(self._tasks)

    # -- scheduling ---------------------------------------------------------------------
    def schedule(self, payload: dict[str, Any], delay_s: float, *, zns: bool = False) -> None:
        """Deliver `payload` after `delay_s` (skipped when no webhook URL is configured)."""
        if not self.state.webhook_url:
            return
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._spawn(self._deliver(payload, zns=zns))

        timer = loop.call_later(delay_s, fire)
        holder.append(timer)
        self._timers.add(timer)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_now(self, payload: dict[str, Any], *, zns: bool = False) -> dict[str, Any]:
        """First attempt inline (its result is returned); retries continue in the background."""
        url = self.state.webhook_url
        if not url:
            return {"status": None, "elapsed_ms": None, "skipped": "no webhook URL configured"}
        body = dump_body(payload)
        status, elapsed_ms = await self._attempt(url, body, payload, 0, zns)
        if not self._ok(status, elapsed_ms):
            self._spawn(self._retry_loop(body, payload, zns, start=1))
        return {"status": status, "elapsed_ms": elapsed_ms}

    async def _deliver(self, payload: dict[str, Any], *, zns: bool) -> None:
        url = self.state.webhook_url
        if not url:
            return
        body = dump_body(payload)
        status, elapsed_ms = await self._attempt(url, body, payload, 0, zns)
        if not self._ok(status, elapsed_ms):
            await self._retry_loop(body, payload, zns, start=1)

    async def _retry_loop(self, body: bytes, payload: dict[str, Any], zns: bool, start: int) -> None:
        delays = self.state.scenario.webhook_retry_delays_s
        for num_retry in range(start, len(delays) + 1):
            await asyncio.sleep(delays[num_retry - 1])
            url = self.state.webhook_url
            if not url:
                return
            self.state.webhook_counts["retries"] += 1
            status, elapsed_ms = await self._attempt(url, body, payload, num_retry, zns)
            if self._ok(status, elapsed_ms):
                return
        self.state.webhook_counts["gave_up"] += 1

    def _ok(self, status: int | None, elapsed_ms: float) -> bool:
        return status == 200 and elapsed_ms <= self.state.scenario.webhook_timeout_s * 1000

    async def _attempt(
        self, url: str, body: bytes, payload: dict[str, Any], num_retry: int, zns: bool
    ) -> tuple[int | None, float]:
        state = self.state
        sc = state.scenario
        headers = {
            "Content-Type": "application/json",
            "X-ZEvent-Signature": signature_header(sc.app_id, body, str(payload["timestamp"]), sc.oa_secret_key),
        }
        if zns:
            headers["X-ZEvent-Server"] = "ZNS"
        if num_retry:
            headers["num_retry"] = str(num_retry)
        assert self._session is not None, "WebhookSender.start() was not awaited"
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=sc.webhook_timeout_s)
            async with self._session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = type(exc).__name__
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        ok = self._ok(status, elapsed_ms)
        state.webhook_counts["delivered" if ok else "failed_attempts"] += 1
        state.webhook_log.append(
            {
                "event_name": payload.get("event_name"),
                "msg_id": (payload.get("message") or {}).get("msg_id"),
                "recipient": (payload.get("recipient") or payload.get("follower") or {}).get("id"),
                "num_retry": num_retry,
                "status": status,
                "error": error,
                "elapsed_ms": elapsed_ms,
                "ok": ok,
                "at": time.time(),
            }
        )
        return status, elapsed_ms
