"""Follow → welcome with the menus and a phone request; share phone → linked, open dossiers
confirmed; later notices go on the free OA channel; unfollow → back to ZNS."""

from __future__ import annotations

from citizen_harness import CODE, PHONE, Bridge, metric, now_ms
from events import event, row

from bridge.ledger import LedgerFollowers
from bridge.ledger.tables import notifications
from sqlalchemy import select


def test_follow_gets_the_three_menus_and_a_phone_request(oa: Bridge) -> None:
    oa.user_event("follow", "u-follow")
    welcome, ask = oa.replies("u-follow", 2)
    buttons = welcome["attachment"]["payload"]["buttons"]
    assert len(buttons) <= 5
    types = [b["type"] for b in buttons]
    assert types.count("oa.open.url") == 2 and "oa.open.phone" in types
    urls = {b["payload"]["url"] for b in buttons if b["type"] == "oa.open.url"}
    assert urls == {oa.settings.oa.portal_url, oa.settings.oa.province_portal_url}
    queries = {b["payload"] for b in buttons if b["type"] == "oa.query.show"}
    assert queries == {"Tra cứu hồ sơ", "Tra cứu thủ tục"}
    phone = next(b for b in buttons if b["type"] == "oa.open.phone")
    assert phone["payload"] == {"phone_code": "02723550055"}
    assert "Cảm ơn Ông/Bà đã quan tâm" in welcome["text"] and len(welcome["text"]) <= 2000
    assert ask["message_type"] == "request_user_info"
    element = ask["attachment"]["payload"]["elements"][0]
    assert "số điện thoại" in element["subtitle"] and len(element["title"]) <= 100


def test_sharing_the_phone_links_it_and_confirms_open_dossiers(oa: Bridge) -> None:
    oa.dossier()                                                   # status 2, open
    oa.dossier(id=2, code="000.00.23.H39-240613-0002", status=5, note="Bản sao sổ hộ khẩu")
    oa.dossier(id=3, code="000.00.23.H39-240101-0003", status=10)  # finished: not repeated
    oa.dossier(id=4, code="000.00.23.H39-240614-0004", applicant_phone="0912000000")
    oa.user_event("follow", "u-link")
    oa.replies("u-link", 2)
    got = oa.replies("u-link", 3, after=oa.share("u-link", PHONE, name="Nguyễn Văn An"))
    assert LedgerFollowers(oa.ledger.engine).user_for_phone(PHONE) == "u-link"
    assert "0909123456 đã được liên kết" in got[0]["text"] and "2 hồ sơ" in got[0]["text"]
    summaries = "\n".join(m["text"] for m in got[1:])
    assert CODE in summaries and "Đã được tiếp nhận" in summaries
    assert "000.00.23.H39-240613-0002" in summaries and "Bản sao sổ hộ khẩu" in summaries
    assert "240101-0003" not in summaries and "240614-0004" not in summaries
    assert metric("onestop_followers_linked") == 1


def test_linked_follower_gets_later_notices_on_the_free_oa_channel(oa: Bridge) -> None:
    first = oa.dossier()
    assert oa.deliver(first[0]) == "zns"                           # not linked yet: ZNS
    oa.user_event("follow", "u-free")
    oa.replies("u-free", 2)
    oa.replies("u-free", 2, after=oa.share("u-free"))
    later = oa.admit(event("u", row(status=9, agency_name="Bộ phận Một cửa xã Phước Lý"),
                           row(status=4)))
    assert oa.deliver(later[0]) == "zalo_oa"
    sent = [m for m in oa.messages(user_id="u-free") if m["tracking_id"] == later[0].key]
    assert sent and "Bộ phận Một cửa xã Phước Lý" in sent[0]["text"]
    with oa.ledger.engine.connect() as conn:
        costs = dict(conn.execute(select(notifications.c.kind, notifications.c.price_vnd)).all())
    assert costs == {"RECEIVED": oa.settings.prices.zns, "RESULT_READY": 0}


def test_a_notice_in_the_chat_looks_its_dossier_up_in_one_tap(oa: Bridge) -> None:
    """No link back to the chat the follower is reading: a button that asks it instead."""
    oa.link("u-tap")
    [received] = oa.dossier()
    assert oa.deliver(received) == "zalo_oa"
    [sent] = [m for m in oa.messages(user_id="u-tap") if m["tracking_id"] == received.key]
    assert CODE in sent["text"] and "zalo.me/" not in sent["text"]
    [button] = sent["attachment"]["payload"]["buttons"]
    assert (button["title"], button["type"]) == ("Tra cứu hồ sơ này", "oa.query.show")
    [answer] = oa.ask("u-tap", button["payload"])  # what Zalo sends when it is tapped
    assert CODE in answer["text"] and "Đã được tiếp nhận" in answer["text"]


def test_unfollow_unlinks_and_notices_go_back_to_zns(oa: Bridge) -> None:
    oa.link("u-gone")
    oa.user_event("unfollow", "u-gone")
    oa.settle()
    assert LedgerFollowers(oa.ledger.engine).user_for_phone(PHONE) is None
    stored = oa.dossier()
    assert oa.deliver(stored[0]) == "zns"


def test_a_phone_that_is_not_a_mobile_number_is_not_linked(oa: Bridge) -> None:
    oa.post({"app_id": "sandbox-app", "sender": {"id": "u-bad"}, "recipient": {"id": "x"},
             "event_name": "user_submit_info", "timestamp": now_ms(),
             "info": {"name": "A", "phone": "12345"}})
    reply = oa.replies("u-bad", 1)[0]
    assert "chưa phải số di động Việt Nam hợp lệ" in reply["text"]
    assert LedgerFollowers(oa.ledger.engine).count() == 0


def test_a_number_already_linked_is_not_taken_over_by_a_second_account(oa: Bridge) -> None:
    """Sharing someone else's number shows none of their dossiers, and their notices keep
    going to them."""
    oa.dossier()
    for user in ("u-owner", "u-other"):
        oa.user_event("follow", user)
        oa.replies(user, 2)
    oa.replies("u-owner", 2, after=oa.share("u-owner"))
    seq = oa.last_seq()
    oa.user_event("user_submit_info", "u-other", phone=PHONE)
    [refused] = oa.replies("u-other", 1, after=seq)
    assert not oa.messages(channel="zns", phone=PHONE, after=str(seq)), "no code to the owner"
    assert "đã được liên kết với một tài khoản Zalo khác" in refused["text"]
    assert CODE not in refused["text"] and oa.settings.oa.centres[0].hotline in refused["text"]
    assert LedgerFollowers(oa.ledger.engine).user_for_phone(PHONE) == "u-owner"
    later = oa.admit(event("u", row(status=9), row(status=4)))
    assert oa.deliver(later[0]) == "zalo_oa"
    assert [m for m in oa.messages(user_id="u-owner") if m["tracking_id"] == later[0].key]
    assert not [m for m in oa.messages(user_id="u-other") if m.get("tracking_id") == later[0].key]
