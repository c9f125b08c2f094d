"""The per-minute window (-32) over every Zalo API call, its headers and what stats observe."""

from __future__ import annotations


def test_rate_limit_rejects_over_the_window_and_reports_headers(make_sandbox):
    box = make_sandbox({"rate_limit_per_minute": 5, "followers": {"u1": {}}})
    remains = []
    for i in range(5):
        reply = box.call("POST", "/message/template", json={
            "phone": "84911000001", "template_id": "t", "template_data": {"a": "b"}}) if i % 2 else \
            box.call("POST", "/v3.0/oa/message/cs", json={"recipient": {"user_id": "u1"}, "message": {"text": "x"}})
        assert reply.json()["error"] == 0
        assert reply.headers["X-RateLimit-Limit"] == "5"
        remains.append(int(reply.headers["X-RateLimit-Remain"]))
    assert remains == [4, 3, 2, 1, 0]
    over = box.cs("u1")
    assert over == {"error": -32, "message": "Your application reached limit call api"}
    assert box.zns("84911000001")["error"] == -32
    assert box.call("GET", "/message/quota").headers["X-RateLimit-Remain"] == "0"
    # OAuth, SMS and control endpoints are outside the Zalo window.
    assert box.sms("84911000001").status_code == 200
    assert "access_token" in box.http.post(
        "/v4/oa/access_token",
        data={"grant_type": "refresh_token", "app_id": "sandbox-app",
              "refresh_token": box.http.get("/sandbox/refresh-token").json()["refresh_token"]},
        headers={"secret_key": "sandbox-secret"}).json()
    stats = box.http.get("/sandbox/stats").json()
    assert stats["rate_limit_rejections"] == 3
    assert stats["errors_per_code"]["-32"] == 3
    assert stats["max_requests_per_60s"] == 8  # every call counts, rejected ones too
    assert stats["requests_per_path"]["/v3.0/oa/message/cs"] == 4
    assert len(box.messages()) == 6


def test_raising_the_limit_at_run_time(make_sandbox):
    box = make_sandbox({"rate_limit_per_minute": 1})
    assert box.zns("84911000001")["error"] == 0
    assert box.zns("84911000001")["error"] == -32
    box.put_scenario({"rate_limit_per_minute": 3})
    assert box.zns("84911000001")["error"] == 0
    assert box.zns("84911000001")["error"] == 0
    assert box.zns("84911000001")["error"] == -32


def test_default_limit_is_4000_per_minute(sandbox):
    scenario = sandbox.http.get("/sandbox/scenario").json()
    assert scenario["rate_limit_per_minute"] == 4000
    assert scenario["zns_daily_quota"] == 100000
    assert scenario["token_ttl_s"] == 90000
    assert scenario["night_window"] == "off"
