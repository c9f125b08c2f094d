"""Transport faults: timeouts, 5xx, garbled bodies, slowness and global latency."""

from __future__ import annotations

import time

import httpx
import pytest


def test_timeout_holds_then_drops_the_connection(make_sandbox):
    box = make_sandbox({"timeout_hold_s": 0.3, "phones": {"84911000001": {"zns": ["timeout"]}}})
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        box.zns("84911000001")
    assert time.monotonic() - started >= 0.3
    assert box.zns("84911000001")["error"] == 0
    assert len(box.messages()) == 1


def test_a_client_timeout_fires_first_with_the_default_hold(make_sandbox):
    box = make_sandbox({"phones": {"84911000001": {"zns": ["timeout"]}}})
    with pytest.raises(httpx.ReadTimeout):
        box.call("POST", "/message/template", timeout=0.2,
                 json={"phone": "84911000001", "template_id": "t", "template_data": {"a": "b"}})
    assert box.http.get("/sandbox/stats").json()["errors_per_code"]["timeout"] == 1
    # The held request does not stop the server from answering, nor from stopping.
    assert box.zns("84911000001")["error"] == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_errors(make_sandbox, status):
    box = make_sandbox({"phones": {"84911000001": {"zns": [f"http_{status}"]}}})
    reply = box.call("POST", "/message/template",
                     json={"phone": "84911000001", "template_id": "t", "template_data": {"a": "b"}})
    assert reply.status_code == status
    assert box.messages() == []


def test_bad_json_and_slow(make_sandbox):
    box = make_sandbox({"phones": {"84911000001": {"zns": ["bad_json", "slow:300"]}}})
    garbled = box.call("POST", "/message/template",
                       json={"phone": "84911000001", "template_id": "t", "template_data": {"a": "b"}})
    assert garbled.status_code == 200 and garbled.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        garbled.json()
    started = time.monotonic()
    assert box.zns("84911000001")["error"] == 0
    assert time.monotonic() - started >= 0.3
    assert len(box.messages()) == 1


def test_global_latency(make_sandbox):
    box = make_sandbox({"latency_ms": 150})
    started = time.monotonic()
    assert box.zns("84911000001")["error"] == 0
    assert box.sms("84911000001").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_invalid_fault_items_are_rejected(sandbox):
    reply = sandbox.put_scenario({"phones": {"84911000001": {"zns": ["explode"]}}})
    assert reply.status_code == 400 and reply.json()["error"] == "invalid scenario"
    assert sandbox.put_scenario({"rate_limit_per_min": 5}).status_code == 400  # typo: unknown key
