"""Serve an aiohttp app from its own thread and event loop (the bridge's loops are threads)."""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web

from bridge.errors import ConfigError

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def start(self, timeout: float = 10.0) -> HttpServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("HTTP server did not start")
        if isinstance(self._error, OSError):
            # A port in use or an address not on this host: the operator's to fix (exit status
            # 2, no restart loop), not a crash.
            raise ConfigError(f"cannot listen on {self.host}:{self.port} (http.host, http.port): "
                              f"{self._error}") from None
        if self._error is not None:
            raise self._error
        log.info("HTTP server listening", extra={"host": self.host, "port": self.port})
        return self

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop)
        try:
            future.result(timeout)
        except Exception:  # best effort at shutdown
            log.warning("HTTP server did not stop cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            # Closed here, not by the garbage collector at exit: there its self-pipe may be
            # gone first, and "Exception ignored … Invalid file descriptor" followed the
            # one-line "cannot listen" message.
            try:
                self._loop.run_until_complete(self._cleanup())
            except Exception:  # the setup's own error is the one to report
                log.debug("HTTP runner cleanup after a failed start", exc_info=True)
            self._loop.close()
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _setup(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
