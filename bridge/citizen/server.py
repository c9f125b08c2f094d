"""Serve an aiohttp application on a background thread (tests, benchmarks, helpers).

The production server is the bridge's own (`onestop-bridge run`); this one exists so
that the webhook can be exercised over real HTTP without it.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web


class AppThread:
    """``AppThread(app).start()`` → ``.url``; ``.stop()``."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="citizen-http")

    def start(self) -> AppThread:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("HTTP server did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        if self._runner is not None:
            self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        site = web.SockSite(self._runner, sock, backlog=2048)
        await site.start()
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def __enter__(self) -> AppThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
