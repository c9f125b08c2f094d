"""The logs of a real delivery run: JSON lines, phones masked, no token or secret anywhere."""

from __future__ import annotations

import re

import pytest
from obs_system import OA_SECRET, PHONE_OA, PHONE_SMS, PHONE_ZNS, System, json_lines
from waiting import wait_for

from bridge.dispatch import SANDBOX_APP_SECRET, SANDBOX_SMS_KEY

pytestmark = pytest.mark.services


def full_forms(phone: str) -> list[str]:
    """84912000102 → the ways it could leak: normalised, local, grouped as typed."""
    local = "0" + phone[2:]
    return [phone, local, f"{local[:4]} {local[4:7]} {local[7:]}", f"+84 {phone[2:]}"]


def test_delivery_run_logs_mask_phones_and_carry_no_tokens(system: System) -> None:
    codes = []
    for phone in (PHONE_ZNS, PHONE_SMS, PHONE_OA):
        dossier_id, code = system.insert(status=2, phone=phone)
        system.set_status(dossier_id, 5, note=f"Bổ sung giấy tờ; liên hệ {phone}")
        codes.append(code)
    for code in codes:
        system.wait_status(code, "SUPPLEMENT_REQUESTED", "sent")
    wait_for(lambda: all(code in system.log("run") for code in codes), timeout=10,
             message="the deliveries logged")

    run_log = system.log("run")
    events = json_lines(run_log)
    assert len(events) == len([line for line in run_log.splitlines() if line.strip()]), \
        "every line of the bridge's log is one JSON object"
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in events)
    sent = [e for e in events if e["msg"] == "notification sent" and e.get("dossier_code") in codes]
    assert {e["channel"] for e in sent} >= {"zns", "sms", "zalo_oa"}
    assert all(e["idempotency_key"] and re.fullmatch(r"849x{5}\d{3}", e["phone"]) for e in sent)

    tokens = system.ledger_rows("SELECT access_token, refresh_token FROM tokens")
    assert tokens, "the bridge stored its Zalo tokens in the ledger"
    secrets = [t for row in tokens for t in row] + [OA_SECRET, SANDBOX_APP_SECRET, SANDBOX_SMS_KEY]
    for name in ("run", "capture"):
        text = system.log(name)
        for phone in (PHONE_ZNS, PHONE_SMS, PHONE_OA):
            for form in full_forms(phone):
                assert form not in text, f"{name} log carries the phone {form}"
        for secret in secrets:
            assert secret not in text, f"{name} log carries a token or secret"
