"""OA host: consultation messages, ZBS by UID, user detail, retired endpoints."""

from __future__ import annotations

import json

FOLLOWERS = {
    "u-active": {"phone": "84911000001", "display_name": "Nguyễn Văn An"},
    "u-stale": {"last_interaction_days_ago": 8},
    "u-left": {"is_follower": False},
}


def buttons(n: int) -> list[dict]:
    return [{"title": f"Nút {i}", "type": "oa.open.url", "payload": {"url": "https://dichvucong.gov.vn"}}
            for i in range(n)]


def cs_body(user_id: str, message: dict, **extra) -> dict:
    return {"recipient": {"user_id": user_id}, "message": message, **extra}


def test_cs_text_is_accepted_recorded_and_answered_like_zalo(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS})
    reply = box.call("POST", "/v3.0/oa/message/cs",
                     json=cs_body("u-active", {"text": "Hồ sơ của bạn đã được tiếp nhận"}, tracking_id="k-1"))
    assert reply.status_code == 200
    assert int(reply.headers["X-RateLimit-Limit"]) == 4000
    assert int(reply.headers["X-RateLimit-Remain"]) < 4000
    body = reply.json()
    assert body["error"] == 0 and body["message"] == "Success"
    data = body["data"]
    assert data["user_id"] == "u-active" and data["quota"]["quota_type"] == "reply"
    assert isinstance(data["message_id"], str) and data["sent_time"].isdigit()
    [sent] = box.messages(channel="zalo_oa")
    assert sent["user_id"] == "u-active" and sent["phone"] == "84911000001"
    assert sent["tracking_id"] == "k-1" and sent["text"] == "Hồ sơ của bạn đã được tiếp nhận"
    assert sent["message_id"] == data["message_id"]


def test_cs_buttons_and_request_user_info(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS})
    with_buttons = {"text": "Tra cứu", "attachment": {"type": "template", "payload": {"buttons": buttons(5)}}}
    assert box.call("POST", "/v3.0/oa/message/cs", json=cs_body("u-active", with_buttons)).json()["error"] == 0
    ask = {"attachment": {"type": "template", "payload": {
        "template_type": "request_user_info",
        "elements": [{"title": "Chia sẻ số điện thoại", "subtitle": "Để nhận thông báo hồ sơ",
                      "image_url": "https://example.invalid/logo.png"}]}}}
    assert box.call("POST", "/v3.0/oa/message/cs", json=cs_body("u-active", ask)).json()["error"] == 0
    kinds = [m["message_type"] for m in box.messages(user_id="u-active")]
    assert kinds == ["buttons", "request_user_info"]
    assert box.messages(user_id="u-active")[0]["tracking_id"] is None


def test_cs_shape_errors(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS})
    post = lambda body: box.call("POST", "/v3.0/oa/message/cs", json=body).json()["error"]  # noqa: E731
    assert post(cs_body("u-active", {"text": "x" * 2001})) == -210
    too_many = {"text": "t", "attachment": {"type": "template", "payload": {"buttons": buttons(6)}}}
    assert post(cs_body("u-active", too_many)) == -210
    bad_type = {"text": "t", "attachment": {"type": "template", "payload": {"buttons": [
        {"title": "x", "type": "oa.open.app", "payload": {}}]}}}
    assert post(bad_type) == -201
    assert post({"message": {"text": "no recipient"}}) == -201
    assert post(cs_body("u-active", {})) == -201
    two = {"attachment": {"type": "template", "payload": {"template_type": "request_user_info",
                                                          "elements": [{"title": "a"}, {"title": "b"}]}}}
    assert post(cs_body("u-active", two)) == -201
    raw = box.call("POST", "/v3.0/oa/message/cs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert raw.json()["error"] == -201 and "data" not in raw.json()
    assert box.messages() == []


def test_cs_needs_a_follower_who_interacted_within_7_days(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS})
    assert box.cs("u-stranger") == {"error": -213, "message": "User has not followed OA"}
    assert box.cs("u-left")["error"] == -213
    assert box.cs("u-stale")["error"] == -230
    # The citizen writes to the OA: the 7-day window opens again.
    box.http.post("/sandbox/user-event", json={"event_name": "user_send_text", "user_id": "u-stale", "text": "hi"})
    assert box.cs("u-stale")["error"] == 0
    box.http.post("/sandbox/user-event", json={"event_name": "unfollow", "user_id": "u-active"})
    assert box.cs("u-active")["error"] == -213
    stats = box.http.get("/sandbox/stats").json()
    assert stats["errors_per_code"]["-213"] == 3 and stats["errors_per_code"]["-230"] == 1


def test_implicit_followers(make_sandbox):
    box = make_sandbox({"implicit_followers": True})
    assert box.cs("any-user-id")["error"] == 0


def test_scripted_user_faults_then_success(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS, "users": {"u-active": {"oa": [-230, -32, "http_502"]}}})
    assert box.cs("u-active")["error"] == -230
    assert box.cs("u-active")["error"] == -32
    assert box.call("POST", "/v3.0/oa/message/cs", json=cs_body("u-active", {"text": "x"})).status_code == 502
    assert box.cs("u-active")["error"] == 0
    assert len(box.messages(channel="zalo_oa")) == 1


def test_zbs_template_by_uid(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS, "templates": {"301": {"ma_ho_so": {"maxLength": 30, "require": True}}}})
    body = {"user_id": "u-active", "template_id": "301", "template_data": {"ma_ho_so": "000.00.23.H39-240612-0001"},
            "tracking_id": "k-7"}
    reply = box.call("POST", "/v3.0/oa/message/template", json=body).json()
    assert reply["error"] == 0 and reply["data"]["quota"]["quota_type"] == "purchase_quota"
    [sent] = box.messages(tracking_id="k-7")
    assert sent["channel"] == "zalo_oa" and sent["template_id"] == "301"
    assert sent["template_data"] == {"ma_ho_so": "000.00.23.H39-240612-0001"}
    missing = {**body, "template_data": {"other": "x"}}
    assert box.call("POST", "/v3.0/oa/message/template", json=missing).json()["error"] == -1122
    assert box.call("POST", "/v3.0/oa/message/template", json={**body, "user_id": "u-stranger"}).json()["error"] == -213
    box.put_scenario({"followers": FOLLOWERS, "night_window": "always"})
    assert box.call("POST", "/v3.0/oa/message/template", json=body).json()["error"] == -234
    assert box.cs("u-active")["error"] == 0  # CS is allowed 24/24


def test_user_detail(make_sandbox):
    box = make_sandbox({"followers": FOLLOWERS})
    get = lambda uid: box.call("GET", "/v3.0/oa/user/detail", params={"data": json.dumps({"user_id": uid})}).json()  # noqa: E731
    data = get("u-active")["data"]
    assert data["user_id"] == "u-active" and data["user_is_follower"] is True
    assert data["display_name"] == "Nguyễn Văn An"
    assert data["shared_info"]["phone"] == "84911000001"
    assert len(data["user_last_interaction_date"].split("/")) == 3
    assert get("u-stranger")["error"] == -213
    assert box.call("GET", "/v3.0/oa/user/detail", params={"data": "nope"}).json()["error"] == -201
    # A follower who shares the phone later.
    box.http.post("/sandbox/user-event", json={"event_name": "follow", "user_id": "u-new"})
    assert "shared_info" not in get("u-new")["data"]
    box.http.post("/sandbox/user-event", json={"event_name": "user_submit_info", "user_id": "u-new",
                                              "phone": "84911000009", "name": "Trần Thị Bình"})
    assert get("u-new")["data"]["shared_info"]["phone"] == "84911000009"


def test_retired_endpoints(sandbox):
    body = {"recipient": {"user_id": "u1"}, "message": {"text": "x"}}
    for path in ("/v3.0/oa/message/transaction", "/v3.0/oa/message/promotion"):
        reply = sandbox.call("POST", path, json=body).json()
        assert reply["error"] == -209 and "discontinued" in reply["message"]
    assert sandbox.call("POST", "/v2.0/oa/message", json=body).json() == {
        "error": -240, "message": "MessageV2 API has been shut down, please switch to MessageV3"}
