"""POST /webhook/zalo over real HTTP: signature variants, refusals, dedupe of Zalo's retries,
durable storage before the 200, unknown events, crash recovery."""

from __future__ import annotations

import json
import threading

import pytest
from citizen_harness import APP_ID, OA_ID, OA_SECRET, Bridge, MakeBridge, metric, now_ms, text_event
from sqlalchemy import select

from bridge.citizen.service import Citizen
from bridge.dispatch import SANDBOX_APP_SECRET
from bridge.citizen.tables import webhook_inbox


def inbox_rows(oa: Bridge) -> list[dict]:
    with oa.ledger.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(webhook_inbox)
                                                       .order_by(webhook_inbox.c.seq))]


@pytest.mark.parametrize(("first", "form", "secret"), [
    (APP_ID, "mac", OA_SECRET), (APP_ID, "bare", OA_SECRET), (OA_ID, "mac", OA_SECRET),
    (OA_ID, "bare", OA_SECRET),
    (APP_ID, "mac", SANDBOX_APP_SECRET),  # zalo-api.md §10.1: one source signs with the app secret
])
def test_every_documented_signature_variant_is_accepted(oa: Bridge, first: str, form: str,
                                                        secret: str) -> None:
    before = metric("onestop_webhook_requests_total", result="accepted")
    reply = oa.post(text_event("u-sig", "hỗ trợ"), first=first, form=form, secret=secret)
    assert reply.status_code == 200
    assert metric("onestop_webhook_requests_total", result="accepted") == before + 1
    variant = inbox_rows(oa)[0]["signature_variant"]
    which = "" if secret == OA_SECRET else "+app_secret"
    assert variant == f"{'app_id' if first == APP_ID else 'oa_id'}{which}/{form}"
    assert "Tổng đài hỗ trợ" in oa.replies("u-sig", 1)[0]["text"]


@pytest.mark.parametrize("case", ["wrong_secret", "no_header", "garbage", "tampered", "not_json"])
def test_mis_signed_requests_are_refused_with_401(oa: Bridge, case: str) -> None:
    before = metric("onestop_webhook_requests_total", result="bad_signature")
    body = text_event("u-evil", "hỗ trợ")
    if case == "wrong_secret":
        reply = oa.post(body, secret="not-the-secret")
    elif case == "no_header":
        reply = oa.post(body, signature=None)
    elif case == "garbage":
        reply = oa.post(body, signature="mac=xyz")
    elif case == "not_json":  # the signature is checked first, whatever the body
        reply = oa.post(b"not json at all {", signature="mac=" + "0" * 64)
    else:
        raw = json.dumps(body).encode()
        from bridge.sandbox.signing import zalo_signature
        good = zalo_signature(APP_ID, raw, body["timestamp"], OA_SECRET)
        reply = oa.post(raw.replace(b"u-evil", b"u-evi1"), signature="mac=" + good)
    assert reply.status_code == 401
    assert metric("onestop_webhook_requests_total", result="bad_signature") == before + 1
    assert inbox_rows(oa) == []


def test_oversized_and_non_json_bodies_are_refused(oa: Bridge) -> None:
    big = text_event("u-big", "x" * (70 * 1024))
    before = {r: metric("onestop_webhook_requests_total", result=r) for r in ("too_large", "bad_json")}
    assert oa.post(big).status_code == 413
    # Signed (with no timestamp to read) but not a JSON object.
    assert oa.post(b"not json at all {").status_code == 400
    assert oa.post(b"[1, 2, 3]").status_code == 400
    assert oa.post("xin chào".encode("utf-16")).status_code == 400
    assert metric("onestop_webhook_requests_total", result="too_large") == before["too_large"] + 1
    assert metric("onestop_webhook_requests_total", result="bad_json") == before["bad_json"] + 3
    assert inbox_rows(oa) == []


@pytest.mark.parametrize(("offset_s", "kept"), [
    (-2 * 86400, False),  # replayed two days later: past Zalo's retries, and soon past the inbox's memory
    (-86400 + 60, True),  # a retry within the day
    (15 * 60, False),     # ahead of this clock by more than clocks differ
    (None, True),         # no timestamp: signed as such by Zalo, not judged
])
def test_a_signed_event_with_a_timestamp_outside_a_day_is_dropped_as_a_replay(
        oa: Bridge, offset_s: float | None, kept: bool) -> None:
    body = text_event("u-replay", "hỗ trợ")
    if offset_s is None:
        del body["timestamp"]
    else:
        body["timestamp"] = now_ms(offset_s)
    before = metric("onestop_webhook_requests_total", result="stale")
    assert oa.post(body).status_code == 200  # Zalo must not retry it either way
    assert metric("onestop_webhook_requests_total", result="stale") == before + (0 if kept else 1)
    assert len(inbox_rows(oa)) == (1 if kept else 0)


def test_zalo_retries_of_an_event_are_acknowledged_and_ignored(oa: Bridge) -> None:
    body = text_event("u-retry", "hỗ trợ", msg_id="msg-retried-1")
    before = metric("onestop_webhook_requests_total", result="duplicate")
    assert oa.post(body).status_code == 200
    for n in (1, 2, 3):
        assert oa.post(body, headers={"num_retry": str(n)}).status_code == 200
    assert metric("onestop_webhook_requests_total", result="duplicate") == before + 3
    oa.replies("u-retry", 1)
    assert len(oa.messages(user_id="u-retry")) == 1, "one answer, not four"
    # Events without msg_id (follow) are deduplicated on the body's hash.
    follow = {"oa_id": OA_ID, "follower": {"id": "u-retry"}, "event_name": "follow",
              "app_id": APP_ID, "timestamp": now_ms(), "source": "oa_profile"}
    assert oa.post(follow).status_code == 200 and oa.post(follow).status_code == 200
    stored = [r["event_name"] for r in inbox_rows(oa) if r["event_name"] != "user_received_message"]
    assert stored == ["user_send_text", "follow"]


def test_the_event_is_on_disk_when_the_200_is_sent(make_bridge: MakeBridge) -> None:
    release = threading.Event()

    class Stuck:  # a dispatcher that does not answer: nothing can be processed meanwhile
        def send_oa_message(self, user_id: str, message: dict, *, tracking: str | None = None) -> str:
            release.wait(30)
            return "late"

    oa = make_bridge(sender=Stuck())
    try:
        assert oa.post(text_event("u-disk", "hỗ trợ")).status_code == 200
        rows = inbox_rows(oa)
        assert len(rows) == 1 and rows[0]["event_name"] == "user_send_text"
        assert rows[0]["status"] == "new" and rows[0]["user_key"] == "u-disk"
    finally:
        release.set()


def test_unknown_events_are_stored_and_acknowledged(oa: Bridge) -> None:
    odd = {"app_id": APP_ID, "event_name": "user_reacted_message", "timestamp": now_ms(),
           "sender": {"id": "u-odd"}, "recipient": {"id": OA_ID},
           "message": {"msg_id": "r-1", "react_icon": "/-heart"}}
    made_up = {"app_id": APP_ID, "event_name": "something_new_2027", "timestamp": now_ms(-3600),
               "whatever": [1, 2]}
    assert oa.post(odd).status_code == 200 and oa.post(made_up).status_code == 200
    oa.settle()
    rows = inbox_rows(oa)
    assert [r["event_name"] for r in rows] == ["user_reacted_message", "something_new_2027"]
    assert {r["status"] for r in rows} == {"done"}
    assert oa.messages() == []


def test_events_left_unhandled_by_a_crash_are_handled_after_restart(make_bridge: MakeBridge) -> None:
    oa = make_bridge(start=False)            # answers, stores, then "crashes" before any work
    assert oa.post(text_event("u-crash", "hỗ trợ")).status_code == 200
    assert oa.post(text_event("u-crash", "thủ tục khai sinh")).status_code == 200
    assert {r["status"] for r in inbox_rows(oa)} == {"new"}
    again = Citizen(oa.settings, oa.ledger.engine, oa.dispatcher, backoff_s=0.05)
    oa.citizen = again
    try:
        assert again.start() == 2
        first, second = oa.replies("u-crash", 2)
        assert "Tổng đài" in first["text"] and "Đăng ký khai sinh" in second["text"]
    finally:
        again.stop(5)


def test_old_handled_events_are_pruned_but_recent_ones_still_dedupe(oa: Bridge) -> None:
    body = text_event("u-old", "hỗ trợ", msg_id="old-1")
    assert oa.post(body).status_code == 200
    oa.replies("u-old", 1)
    assert oa.citizen.inbox.prune(3600) == 0                 # an hour old at most: kept
    assert oa.post(body).status_code == 200 and len(oa.messages(user_id="u-old")) == 1
    assert oa.citizen.inbox.prune(-1) >= 1                   # everything handled is older
    assert [r for r in inbox_rows(oa) if r["event_key"] == "user_send_text:old-1"] == []
