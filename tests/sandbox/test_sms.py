"""The SMS gateway contract the bridge's last-resort channel relies on."""

from __future__ import annotations

import time


def test_send_is_accepted_and_recorded(sandbox):
    reply = sandbox.sms("84911000001", "Hồ sơ 000.00.23.H39-240612-0001 đã có kết quả", tracking_id="idem-9")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "accepted" and body["price"] == 350 and body["sms_id"]
    [sent] = sandbox.messages(channel="sms")
    assert sent["phone"] == "84911000001" and sent["tracking_id"] == "idem-9"
    assert sent["text"].startswith("Hồ sơ") and sent["brandname"] == "MOTCUA"
    assert sent["message_id"] == body["sms_id"]


def test_a_long_text_is_billed_per_part(sandbox):
    """Unicode text: 70 characters in one SMS, 67 per part beyond; GSM-7 text: 160, 153."""
    for text, parts in [("Đã có kết quả. " * 10, 3), ("Ho so da co ket qua. " * 9, 2)]:
        body = sandbox.sms("84911000002", text.strip()).json()
        assert (body["parts"], body["price"]) == (parts, parts * 350)


def test_auth_and_validation(make_sandbox):
    box = make_sandbox({"sms_api_key": "k-123"})
    assert box.sms("84911000001").status_code == 401
    assert box.sms("84911000001", key="k-123").status_code == 200
    bad = box.sms("0911000001", key="k-123")
    assert bad.status_code == 400 and bad.json() == {"error": "invalid_phone"}
    assert box.sms("84911000001", "", key="k-123").json() == {"error": "invalid_text"}
    assert len(box.messages()) == 1


def test_rate_limit_answers_429_with_retry_after(make_sandbox):
    box = make_sandbox({"sms_rate_per_second": 3})
    codes = [box.sms(f"8491100000{i}").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    over = box.sms("84911000009")
    assert over.headers["Retry-After"] == "1" and over.json() == {"error": "rate_limited"}
    time.sleep(1.05)
    assert box.sms("84911000009").status_code == 200
    assert box.http.get("/sandbox/stats").json()["sms_rate_rejections"] == 2


def test_scripted_faults_then_success(make_sandbox):
    box = make_sandbox({"phones": {"84911000004": {"sms": ["http_503", 500, 429, "bad_json"]}}})
    first = box.sms("84911000004")
    assert first.status_code == 503
    assert box.sms("84911000004").status_code == 500
    throttled = box.sms("84911000004")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"]
    garbled = box.sms("84911000004")
    assert garbled.status_code == 200
    try:
        garbled.json()
        raise AssertionError("bad_json must not parse")
    except ValueError:
        pass
    assert box.sms("84911000004").json()["status"] == "accepted"
    assert len(box.messages(channel="sms")) == 1
