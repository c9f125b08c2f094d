"""Signed webhook events: delivery receipts, citizen events, retries."""

from __future__ import annotations

import hashlib

from bridge.sandbox.signing import zalo_signature

FAST_RETRIES = {"webhook_retry_delays_s": [0.05, 0.05, 0.05]}


def verify(received, app_id: str = "sandbox-app", secret: str = "sandbox-oa-secret") -> bool:
    timestamp = received.json()["timestamp"]
    header = received.headers["x-zevent-signature"]
    return header == "mac=" + zalo_signature(app_id, received.body, timestamp, secret)


def test_signature_is_plain_sha256_of_the_concatenation():
    body = b'{"event_name":"follow","timestamp":"1700000000000"}'
    expected = hashlib.sha256(b"app" + body + b"1700000000000" + b"secret").hexdigest()
    assert zalo_signature("app", body, "1700000000000", "secret") == expected


def test_zns_delivery_receipt(make_sandbox, receiver):
    box = make_sandbox({"delivery_delay_ms": 20}, webhook_url=receiver.url, app_id="360846524940903967",
                       oa_secret_key="oa-key")
    msg_id = box.zns("84911000001", tracking_id="idem-42")["data"]["msg_id"]
    [got] = receiver.wait(1)
    assert verify(got, "360846524940903967", "oa-key")
    assert got.headers["x-zevent-server"] == "ZNS"
    event = got.json()
    assert event["event_name"] == "user_received_message"
    assert event["app_id"] == "360846524940903967"
    assert event["recipient"] == {"id": "84911000001"}
    assert event["message"]["msg_id"] == msg_id
    assert event["message"]["tracking_id"] == "idem-42"
    assert event["message"]["delivery_time"].isdigit() and event["timestamp"].isdigit()


def test_oa_delivery_receipt(make_sandbox, receiver):
    box = make_sandbox({"followers": {"u1": {}}, "delivery_delay_ms": 0}, webhook_url=receiver.url)
    msg_id = box.cs("u1")["data"]["message_id"]
    [got] = receiver.wait(1)
    assert verify(got) and "x-zevent-server" not in got.headers
    event = got.json()
    assert event["event_name"] == "user_received_message"
    assert event["recipient"] == {"id": "u1"} and event["message"] == {"msg_id": msg_id}


def test_retry_on_500_with_num_retry(make_sandbox, receiver):
    receiver.statuses.extend([500, 503])
    box = make_sandbox({**FAST_RETRIES, "delivery_delay_ms": 0}, webhook_url=receiver.url)
    box.zns("84911000001")
    first, second, third = receiver.wait(3)
    assert "num_retry" not in first.headers
    assert second.headers["num_retry"] == "1" and third.headers["num_retry"] == "2"
    assert first.body == second.body == third.body and verify(third)
    log = box.http.get("/sandbox/webhooks").json()
    assert [entry["status"] for entry in log] == [500, 503, 200]
    assert box.http.get("/sandbox/stats").json()["webhooks"]["retries"] == 2


def test_slow_reply_counts_as_failure_and_retries_give_up(make_sandbox, receiver, wait_for):
    receiver.delay_s = 0.3
    box = make_sandbox({**FAST_RETRIES, "webhook_timeout_s": 0.1, "delivery_delay_ms": 0}, webhook_url=receiver.url)
    box.zns("84911000001")
    receiver.wait(4)
    stats = wait_for(lambda: (s := box.http.get("/sandbox/stats").json())["webhooks"].get("gave_up") and s,
                     5, 0.02, "retries to give up")
    assert stats["webhooks"]["gave_up"] == 1 and stats["webhooks"]["failed_attempts"] == 4
    # Sending never waited for the webhook.
    assert box.zns("84911000001")["error"] == 0


def test_user_events_update_state_and_post_signed_events(make_sandbox, receiver):
    box = make_sandbox(webhook_url=receiver.url)
    reply = box.http.post("/sandbox/user-event", json={"event_name": "follow", "user_id": "u-9"}).json()
    assert reply["status"] == 200 and reply["elapsed_ms"] >= 0
    follow = receiver.wait(1)[0]
    assert verify(follow)
    assert follow.json()["event_name"] == "follow" and follow.json()["follower"] == {"id": "u-9"}
    assert box.cs("u-9")["error"] == 0

    text = box.http.post("/sandbox/user-event", json={"event_name": "user_send_text", "user_id": "u-9",
                                                      "text": "000.00.23.H39-240612-0001"}).json()
    assert text["event"]["message"]["text"] == "000.00.23.H39-240612-0001"
    assert text["event"]["sender"] == {"id": "u-9"}

    box.http.post("/sandbox/user-event", json={"event_name": "user_submit_info", "user_id": "u-9",
                                              "phone": "84911000077", "name": "Lê Văn Cường"})
    events = [r.json() for r in receiver.wait(4) if r.json()["event_name"] == "user_submit_info"]
    assert events[0]["info"]["phone"] == "84911000077" and events[0]["info"]["name"] == "Lê Văn Cường"
    assert box.cs("u-9")["error"] == 0
    assert box.messages(user_id="u-9")[-1]["phone"] == "84911000077"

    bad = box.http.post("/sandbox/user-event", json={"event_name": "user_submit_info", "user_id": "u-x"})
    assert bad.status_code == 400


def test_user_event_reports_bridge_failure(make_sandbox, receiver):
    receiver.statuses.append(401)  # the bridge rejected the signature
    box = make_sandbox({**FAST_RETRIES}, webhook_url=receiver.url)
    reply = box.http.post("/sandbox/user-event", json={"event_name": "follow", "user_id": "u-1"}).json()
    assert reply["status"] == 401
    assert receiver.wait(2)[1].headers["num_retry"] == "1"


def test_no_webhook_url_means_no_webhooks(make_sandbox, receiver):
    box = make_sandbox({"delivery_delay_ms": 0})
    box.zns("84911000001")
    reply = box.http.post("/sandbox/user-event", json={"event_name": "follow", "user_id": "u-1"}).json()
    assert reply["status"] is None and "skipped" in reply
    # Pointing the sandbox at a webhook at run time.
    box.http.put("/sandbox/webhook", json={"url": receiver.url})
    box.zns("84911000001")
    assert receiver.wait(1)[0].json()["recipient"] == {"id": "84911000001"}


def test_receipts_can_be_turned_off(make_sandbox, receiver, wait_for):
    box = make_sandbox({"delivery_webhooks": False, "delivery_delay_ms": 0}, webhook_url=receiver.url)
    box.zns("84911000001")
    box.http.post("/sandbox/user-event", json={"event_name": "follow", "user_id": "u-1"})
    receiver.wait(1)
    stats = box.http.get("/sandbox/stats").json()["webhooks"]
    assert stats["pending"] == 0 and stats["delivered"] == 1
    assert [r.json()["event_name"] for r in receiver.requests] == ["follow"]
