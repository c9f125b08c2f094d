"""The one shared `httpx.Client` and the mapping of httpx's exception tree to ours.

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

from typing import Any

import httpx

from bridge.errors import TransportError


def make_client(*, timeout_s: float, max_connections: int = 32,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client shared by all worker threads (httpx's sync pool is thread-safe)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        transport=transport,
        follow_redirects=False,
        headers={"User-Agent": "onestop-bridge"},
    )


def send(client: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
    """Send one request; any httpx failure becomes TransportError."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransportError(f"{what}: timeout ({type(exc).__name__})") from exc
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
