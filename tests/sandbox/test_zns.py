"""ZNS host: send validation, scripted per-phone faults, quota, night window, status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

VN = timezone(timedelta(hours=7))
TEMPLATES = {"238401": {"ma_ho_so": {"maxLength": 30, "require": True},
                        "ten_thu_tuc": {"maxLength": 200, "require": True},
                        "ghi_chu": {"maxLength": 10}}}
GOOD = {"ma_ho_so": "000.00.23.H39-240612-0001", "ten_thu_tuc": "Cấp giấy phép xây dựng"}


def test_send_answers_like_zalo_and_is_recorded(sandbox):
    reply = sandbox.call("POST", "/message/template", json={
        "phone": "84911000001", "template_id": "238401", "template_data": GOOD, "tracking_id": "idem-1"})
    assert reply.headers["X-RateLimit-Remain"].isdigit()
    body = reply.json()
    assert body["error"] == 0
    data = body["data"]
    assert data["sending_mode"] == "1" and data["sent_time"].isdigit()
    assert data["quota"] == {"dailyQuota": "100000", "remainingQuota": "99999"}
    [sent] = sandbox.messages(tracking_id="idem-1")
    assert sent["channel"] == "zns" and sent["phone"] == "84911000001" and sent["user_id"] is None
    assert sent["template_id"] == "238401" and sent["template_data"] == GOOD
    assert sent["message_id"] == data["msg_id"]
    assert sent["at"].endswith("Z") and "T" in sent["at"]


@pytest.mark.parametrize("phone", ["0911000001", "+84911000001", "8491100000", "849110000011", "84 911000001", None])
def test_phone_must_be_84_and_9_digits(sandbox, phone):
    assert sandbox.zns(phone)["error"] == -108


def test_template_registry_validation(make_sandbox):
    box = make_sandbox({"templates": TEMPLATES})
    assert box.zns("84911000001", "238401", GOOD)["error"] == 0
    assert box.zns("84911000001", "238401", {"ma_ho_so": "x"})["error"] == -1122
    assert box.zns("84911000001", "238401", {**GOOD, "ten_thu_tuc": ""})["error"] == -1122
    assert box.zns("84911000001", "238401", {**GOOD, "ma_ho_so": "x" * 31})["error"] == -1121
    assert box.zns("84911000001", "238401", {**GOOD, "ghi_chu": "x" * 11})["error"] == -1121
    assert box.zns("84911000001", "238401", {**GOOD, "so_tien": 1250000})["error"] == -1124
    assert box.call("POST", "/message/template", json={"phone": "84911000001", "template_id": "238401"}
                    ).json()["error"] == -111
    # Unregistered templates accept any string-valued data unless strict.
    assert box.zns("84911000001", "999", {"anything": "goes"})["error"] == 0
    box.put_scenario({"templates": TEMPLATES, "strict_templates": True})
    assert box.zns("84911000001", "999", {"anything": "goes"})["error"] == -109
    info = box.call("GET", "/template/info/v2", params={"template_id": "238401"}).json()["data"]
    assert {p["name"]: p["maxLength"] for p in info["listParams"]}["ma_ho_so"] == 30


def test_tracking_id_at_most_48_characters(sandbox):
    assert sandbox.zns("84911000001", tracking_id="k" * 48)["error"] == 0
    assert sandbox.zns("84911000001", tracking_id="k" * 49)["error"] == -132


def test_body_errors(sandbox):
    post = lambda content: sandbox.call("POST", "/message/template", content=content,  # noqa: E731
                                        headers={"Content-Type": "application/json"}).json()
    assert post(b"") == {"error": -121, "message": "Body is empty"}
    assert post(b"{oops")["error"] == -122


def test_scripted_phone_faults_then_success(make_sandbox):
    box = make_sandbox({"phones": {
        "84911000002": {"zns": [-118]},
        "84911000003": {"zns": [-100, -100]},
        "84911000005": {"zns": [-119, -124, -220]},
        "84911000006": {"has_zalo": False},
    }})
    assert box.zns("84911000002") == {"error": -118, "message": "Zalo account not existed"}
    assert box.zns("84911000002")["error"] == 0
    assert [box.zns("84911000003")["error"] for _ in range(3)] == [-100, -100, 0]
    assert [box.zns("84911000005")["error"] for _ in range(4)] == [-119, -124, -220, 0]
    assert [box.zns("84911000006")["error"] for _ in range(3)] == [-118, -118, -118]
    assert {m["phone"] for m in box.messages(channel="zns")} == {"84911000002", "84911000003", "84911000005"}
    # Replacing the scenario restarts the scripts.
    box.put_scenario({"phones": {"84911000002": {"zns": [-118]}}})
    assert box.zns("84911000002")["error"] == -118


def test_daily_quota_counts_down_then_144_and_resets_next_day(make_sandbox, clock):
    clock.now = datetime(2026, 11, 20, 10, 0, tzinfo=VN).timestamp()
    box = make_sandbox({"zns_daily_quota": 2}, clock=clock)
    assert box.zns("84911000001")["data"]["quota"]["remainingQuota"] == "1"
    assert box.zns("84911000001")["data"]["quota"]["remainingQuota"] == "0"
    assert box.zns("84911000001") == {"error": -144, "message": "OA has exceeded the daily ZNS quota"}
    quota = box.call("GET", "/message/quota").json()
    assert quota["error"] == 0 and quota["data"]["dailyQuota"] == 2 and quota["data"]["remainingQuota"] == 0
    clock.now = datetime(2026, 11, 21, 0, 1, tzinfo=VN).timestamp()  # past midnight in Vietnam
    box.new_token()
    assert box.zns("84911000001")["error"] == 0


def test_night_window_modes(make_sandbox, clock):
    clock.now = datetime(2026, 11, 20, 23, 30, tzinfo=VN).timestamp()
    box = make_sandbox({}, clock=clock)
    assert box.zns("84911000001")["error"] == 0  # "off" is the default
    box.put_scenario({"night_window": "always"})
    assert box.zns("84911000001") == {"error": -133, "message": "Cannot send ZNS at night (22:00 - 06:00)"}
    box.put_scenario({"night_window": "real"})
    assert box.zns("84911000001")["error"] == -133
    clock.now = datetime(2026, 11, 21, 5, 59, tzinfo=VN).timestamp()
    box.new_token()
    assert box.zns("84911000001")["error"] == -133
    clock.now = datetime(2026, 11, 21, 6, 0, tzinfo=VN).timestamp()
    assert box.zns("84911000001")["error"] == 0
    clock.now = datetime(2026, 11, 21, 21, 59, tzinfo=VN).timestamp()
    assert box.zns("84911000001")["error"] == 0
    clock.now = datetime(2026, 11, 21, 22, 0, tzinfo=VN).timestamp()
    assert box.zns("84911000001")["error"] == -133


def test_status_after_delivery(make_sandbox, wait_for):
    box = make_sandbox({"delivery_delay_ms": 50})
    msg_id = box.zns("84911000001")["data"]["msg_id"]
    status = lambda: box.call("GET", "/message/status", params={"message_id": msg_id}).json()["data"]  # noqa: E731
    delivered = wait_for(lambda: status()["status"] == 1 and status(), 5, 0.01, "delivery")
    assert delivered["delivery_time"].isdigit()
    assert box.call("GET", "/message/status", params={"message_id": "nope"}).json()["data"]["status"] == -1
    assert box.call("GET", "/message/status").json()["error"] == -107
