"""Starting the sandbox: in an event loop, in a background thread, or in the foreground."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from bridge.sandbox.app import make_app
from bridge.sandbox.messages import DEFAULT_MAX_MESSAGES
from bridge.sandbox.scenario import Scenario, load_scenario
from bridge.sandbox.state import SandboxState

ScenarioSource = str | Path | dict[str, Any] | Scenario | None


class AsyncSandbox:
    """A running sandbox inside the caller's event loop."""

    def __init__(self, runner: web.AppRunner, state: SandboxState, url: str) -> None:
        self._runner = runner
        self.state = state
        self.url = url

    async def aclose(self) -> None:
        await self._runner.cleanup()


async def start(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    scenario: ScenarioSource = None,
    webhook_url: str | None = None,
    app_id: str | None = None,
    oa_secret_key: str | None = None,
    clock: Callable[[], float] = time.time,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> AsyncSandbox:
    """Start on `host:port` (0 = a free port) in the running loop."""
    pinned = {"webhook_url": webhook_url, "app_id": app_id, "oa_secret_key": oa_secret_key}
    state = SandboxState(load_scenario(scenario), pinned=pinned, clock=clock, max_messages=max_messages)
    runner = web.AppRunner(make_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return AsyncSandbox(runner, state, f"http://{shown}:{bound}")


class SandboxHandle:
    """A sandbox running on its own event loop in a daemon thread: ``.url``, ``.stop()``."""

    def __init__(self, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._sandbox: AsyncSandbox | None = None
        self._thread = threading.Thread(target=self._run, args=(kwargs,), name="zalo-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        if self._sandbox is None:
            raise RuntimeError("sandbox did not start within 30 s")
        self.url: str = self._sandbox.url
        self.state: SandboxState = self._sandbox.state

    def _run(self, kwargs: dict[str, Any]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._sandbox = self._loop.run_until_complete(start(**kwargs))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._sandbox.aclose())
        self._loop.run_until_complete(_cancel_leftovers())
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _cancel_leftovers() -> None:
    """Cancel handlers still held (e.g. an injected ``timeout``) so the loop closes cleanly."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def run_in_thread(**kwargs: Any) -> SandboxHandle:
    """Start the sandbox in a background thread; keyword arguments as for `start`."""
    return SandboxHandle(**kwargs)


serve = run_in_thread


def serve_forever(*, on_ready: Callable[[str], None] | None = None, **kwargs: Any) -> None:
    """Run in the foreground until SIGINT/SIGTERM (used by ``onestop-bridge sandbox``)."""

    async def main() -> None:
        sandbox = await start(**kwargs)
        if on_ready is not None:
            on_ready(sandbox.url)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
        finally:
            await sandbox.aclose()

    asyncio.run(main())
