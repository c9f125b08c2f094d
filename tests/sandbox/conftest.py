"""Fixtures for the sandbox tests: an in-process sandbox, a Zalo-token client, a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import httpx
import pytest

from bridge.sandbox import SandboxHandle, run_in_thread
from waiting import wait_for

class FakeClock:
    """Wall clock the test can move: ``clock.now = …`` or ``clock.advance(s)``."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sandbox:
    handle: SandboxHandle
    http: httpx.Client
    token: str = ""

    @property
    def url(self) -> str:
        return self.handle.url

    def new_token(self) -> str:
        refresh = self.http.get("/sandbox/refresh-token").json()["refresh_token"]
        scenario = self.http.get("/sandbox/scenario").json()
        reply = self.http.post(
            "/v4/oa/access_token",
            data={"grant_type": "refresh_token", "refresh_token": refresh, "app_id": scenario["app_id"]},
            headers={"secret_key": scenario["app_secret"]},
        ).json()
        self.token = reply["access_token"]
        return self.token

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"access_token": self.token, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def zns(self, phone: str, template_id: str = "tpl-1", data: dict[str, Any] | None = None, **extra: Any) -> dict:
        body = {"phone": phone, "template_id": template_id, "template_data": data or {"ma_ho_so": "H39-0001"}}
        body.update(extra)
        return self.call("POST", "/message/template", json=body).json()

    def cs(self, user_id: str, text: str = "Xin chào", **extra: Any) -> dict:
        body = {"recipient": {"user_id": user_id}, "message": {"text": text}, **extra}
        return self.call("POST", "/v3.0/oa/message/cs", json=body).json()

    def sms(self, phone: str, text: str = "Hồ sơ đã có kết quả", key: str = "sandbox-sms-key",
            **extra: Any) -> httpx.Response:
        body = {"phone": phone, "text": text, "brandname": "MOTCUA", **extra}
        return self.http.post("/sms/send", json=body, headers={"Authorization": f"Bearer {key}"})

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        return self.http.get("/sandbox/messages", params=filters).json()

    def put_scenario(self, scenario: dict[str, Any]) -> httpx.Response:
        return self.http.put("/sandbox/scenario", json=scenario)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def factory(scenario: dict[str, Any] | None = None, *, token: bool = True, **kwargs: Any) -> Sandbox:
        handle = run_in_thread(scenario=scenario, **kwargs)
        box = Sandbox(handle, httpx.Client(base_url=handle.url, timeout=10))
        started.append(box)
        if token:
            box.new_token()
        return box

    yield factory
    for box in started:
        box.http.close()
        box.handle.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint: answers the queued statuses (then 200), optionally slowly."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    delay_s: float = 0.0

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        wait_for(lambda: len(self.requests) >= count, timeout, 0.01, f"{count} webhook requests")
        return self.requests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            box.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body, time.time()))
            if box.delay_s:
                time.sleep(box.delay_s)
            status = box.statuses.popleft() if box.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    box.url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    yield box
    server.shutdown()
    server.server_close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()



@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for
