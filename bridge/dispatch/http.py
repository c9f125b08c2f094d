"""The HTTP clients of the dispatcher and the mapping of httpx's exception tree to ours.

httpx's tree (`httpx/_exceptions.py`)::

    HTTPError
    ├── RequestError
    │   ├── TransportError   (TimeoutException, NetworkError, ProtocolError, ProxyError, …)
    │   ├── DecodingError
    │   └── TooManyRedirects
    └── HTTPStatusError      (only from raise_for_status, which we do not call)

Every RequestError means "the request may or may not have reached the provider" and is
retryable as a whole; we never look inside it. HTTP statuses are the caller's business
(Zalo answers 200 even for errors; the SMS gateway uses real statuses).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import httpx

from bridge.errors import TransportError


class HttpClient(Protocol):
    """What the provider clients need: an `httpx.Client` or a `ThreadClients`."""

    def request(self, method: str, url: str, *, params: Any = None, data: Any = None,
                json: Any = None, headers: Any = None) -> httpx.Response: ...


class ThreadClients:
    """One `httpx.Client` per thread, made on first use; `close()` closes them all.

    A shared client serialises every request through its pool's lock twice (taking a
    connection, returning it). A thread that holds that lock while it waits for the
    interpreter lock, behind the consumer thread's work, stalls every worker: measured
    with 8 workers, they spent two thirds of their time waiting on it. A thread does one
    request at a time, so a small pool of its own (one connection per host) suffices.
    """

    def __init__(self, *, timeout_s: float, transport: httpx.BaseTransport | None = None,
                 hosts: int = 4) -> None:
        self._make = lambda: make_client(timeout_s=timeout_s, max_connections=hosts,
                                         transport=transport)
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make()
            with self._lock:
                self._clients.append(client)
        return client.request(method, url, **kwargs)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def make_client(*, timeout_s: float, max_connections: int = 32,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """One client (httpx's sync pool is thread-safe; see ThreadClients for many threads)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        transport=transport,
        follow_redirects=False,
        headers={"User-Agent": "onestop-bridge"},
    )


def send(client: HttpClient, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """Send one request; any httpx failure becomes TransportError."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransportError(f"{what}: timeout ({type(exc).__name__})") from exc
    except httpx.LocalProtocolError as exc:  # refused before sending; its text quotes the header
        raise TransportError(f"{what}: {type(exc).__name__} (a header or the URL is not valid HTTP: "
                             "a configured secret or URL with a stray character?)") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc


def json_body(response: httpx.Response, *, what: str) -> dict[str, Any]:
    """The JSON object of a response, or TransportError (a proxy's HTML page, a cut body)."""
    try:
        body = response.json()
    except ValueError as exc:
        raise TransportError(f"{what}: HTTP {response.status_code} body is not JSON") from exc
    if not isinstance(body, dict):
        raise TransportError(f"{what}: HTTP {response.status_code} body is not a JSON object")
    return body


def retry_after_s(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default  # an HTTP-date; rare enough to not parse
