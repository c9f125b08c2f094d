"""Procedure lookup, support, satisfaction ratings and feedback, subscriptions — through the
chat, as a citizen uses them."""

from __future__ import annotations

import json
import time

import pytest
from citizen_harness import CODE, Bridge, metric
from events import event, row
from sqlalchemy import select
from waiting import wait_for

from bridge.citizen.tables import delivery_receipts, feedback, ratings, subscriptions


def test_procedure_search_is_accent_insensitive(oa: Bridge) -> None:
    oa.follow("u-proc")
    for typed in ("thủ tục khai sinh", "THU TUC khai sinh", "Thủ tục: làm giấy khai sinh cho con"):
        reply = oa.ask("u-proc", typed)[0]
        text = reply["text"]
        assert text.startswith("Đăng ký khai sinh") and "Mã thủ tục: 1.001193" in text
        assert "Thời hạn giải quyết:" in text and "Phí, lệ phí:" in text
        assert "Hồ sơ gồm:" in text and "Nơi nộp:" in text and len(text) <= 2000
        buttons = reply["attachment"]["payload"]["buttons"]
        assert buttons[0]["type"] == "oa.open.url" and "1.001193" in buttons[0]["payload"]["url"]
        assert all(len(b["title"]) <= 40 for b in buttons) and len(buttons) <= 5
    other = oa.ask("u-proc", "thủ tục sang tên sổ đỏ")[0]["text"]
    assert other.startswith("Đăng ký biến động quyền sử dụng đất")
    none = oa.ask("u-proc", "thủ tục xyzzy plugh")[0]["text"]
    assert "Chưa tìm thấy thủ tục phù hợp" in none
    menu = oa.ask("u-proc", "Tra cứu thủ tục")[0]["text"]
    assert "thủ tục khai sinh" in menu


def test_support_lists_hotline_and_hours_with_a_call_button(make_bridge) -> None:  # type: ignore[no-untyped-def]
    oa = make_bridge(centres=[
        {"name": "Trung tâm Phục vụ hành chính công tỉnh", "hotline": "0272 3550 055"},
        {"name": "Trung tâm Phục vụ hành chính công xã Cần Giuộc", "hotline": "0272 3874 123",
         "hours": "Thứ Hai – Thứ Bảy, 7:00–17:00"}])
    oa.follow("u-help")
    for typed in ("hỗ trợ", "Ho tro", "Hỗ trợ"):
        reply = oa.ask("u-help", typed)[0]
        assert "0272 3550 055" in reply["text"] and "Thứ Hai – Thứ Bảy, 7:00–17:00" in reply["text"]
        buttons = reply["attachment"]["payload"]["buttons"]
        assert [b["type"] for b in buttons] == ["oa.open.phone", "oa.open.phone"]
        assert buttons[1]["payload"] == {"phone_code": "02723874123"}


def test_result_returned_brings_a_rating_prompt_and_the_answer_is_recorded(oa: Bridge) -> None:
    oa.link("u-rate")
    oa.dossier(status=9)
    seq = oa.last_seq()
    done = oa.admit(event("u", row(status=10, finished_at="2024-06-19T03:00:00Z"), row(status=9)))
    assert oa.deliver(done[0]) == "zalo_oa"
    notice, prompt = oa.replies("u-rate", 2, after=seq)
    assert notice["tracking_id"] == done[0].key
    buttons = prompt["attachment"]["payload"]["buttons"]
    assert len(buttons) == 5 and {b["type"] for b in buttons} == {"oa.query.hide"}
    assert buttons[0]["payload"] == f"#danh-gia {CODE} 5"
    before = metric("onestop_ratings_total", score="2")
    thanks = oa.ask("u-rate", buttons[3]["payload"])[0]["text"]    # "2 – Không hài lòng"
    assert "2/5" in thanks and "góp ý" in thanks
    assert metric("onestop_ratings_total", score="2") == before + 1
    count = metric("onestop_feedback_total")
    oa.ask("u-rate", "góp ý: phải chờ ở quầy hơn một tiếng")
    assert metric("onestop_feedback_total") == count + 1
    with oa.ledger.engine.connect() as conn:
        assert conn.execute(select(ratings.c.dossier_code, ratings.c.user_id, ratings.c.score)
                            ).all() == [(CODE, "u-rate", 2)]
        assert conn.execute(select(feedback.c.dossier_code, feedback.c.text)).all() == [
            (CODE, "phải chờ ở quầy hơn một tiếng")]
    # A second receipt of the same notice does not prompt twice; a forged rating is refused.
    oa.citizen.receipts.prompt_rating(oa.citizen.receipts._match(done[0].key, None))  # type: ignore[arg-type]
    forged = oa.ask("u-rate", "#danh-gia 000.00.23.H39-240612-0777 1")[0]["text"]
    assert "Không tìm thấy yêu cầu đánh giá" in forged
    prompts = [m for m in oa.messages(user_id="u-rate") if "#danh-gia" in json.dumps(m)]
    assert len(prompts) == 1


def test_delivery_receipts_are_recorded_with_latency(oa: Bridge) -> None:
    stored = oa.dossier()
    before = metric("onestop_event_to_delivered_seconds_count", channel="zns")
    assert oa.deliver(stored[0]) == "zns"

    def recorded() -> list:
        with oa.ledger.engine.connect() as conn:
            return list(conn.execute(select(delivery_receipts.c.idempotency_key,
                                            delivery_receipts.c.channel)).all())
    assert wait_for(recorded, 10) == [(stored[0].key, "zns")]
    oa.settle()  # the worker observes the latency just after it commits the receipt row
    assert metric("onestop_event_to_delivered_seconds_count", channel="zns") == before + 1


def test_feedback_without_a_dossier_and_empty_feedback(oa: Bridge) -> None:
    oa.follow("u-fb")
    assert "kèm nội dung" in oa.ask("u-fb", "góp ý")[0]["text"]
    oa.ask("u-fb", "Góp ý nhà vệ sinh của trung tâm cần sạch hơn")
    oa.ask("u-fb", f"phản ánh hồ sơ {CODE} bị chậm")
    with oa.ledger.engine.connect() as conn:
        assert conn.execute(select(feedback.c.dossier_code, feedback.c.text)
                            .order_by(feedback.c.id)).all() == [
            (None, "nhà vệ sinh của trung tâm cần sạch hơn"), (CODE, f"hồ sơ {CODE} bị chậm")]


def test_feedback_longer_than_kept_says_so(oa: Bridge) -> None:
    oa.follow("u-long")
    reply = oa.ask("u-long", "góp ý " + "Thời gian chờ quá lâu. " * 120)[0]["text"]
    assert "đã được ghi nhận" in reply and "dài hơn 2.000 ký tự" in reply


def test_subscriptions_by_chat_command(oa: Bridge) -> None:
    oa.follow("u-sub")
    assert "đã đăng ký nhận tin tức" in oa.ask("u-sub", "Đăng ký tin tức")[0]["text"]
    assert "thông báo khẩn cấp" in oa.ask("u-sub", "dang ky khan cap")[0]["text"]

    def topics() -> set[str]:
        with oa.ledger.engine.connect() as conn:
            return set(conn.execute(select(subscriptions.c.topic)).scalars())
    assert topics() == {"tin-tuc", "khan-cap"}
    assert "đã hủy đăng ký" in oa.ask("u-sub", "Huỷ đăng ký tin tức")[0]["text"]
    assert topics() == {"khan-cap"}
    oa.user_event("unfollow", "u-sub")
    oa.settle()
    assert topics() == set()


def test_anything_else_gets_the_help_text_and_menus(oa: Bridge) -> None:
    oa.follow("u-hi")
    reply = oa.ask("u-hi", "xin chào")[0]
    assert "Ông/Bà có thể nhắn vào đây" in reply["text"]
    assert len(reply["attachment"]["payload"]["buttons"]) == 5
    assert json.dumps(reply, ensure_ascii=False).count("Tra cứu hồ sơ") >= 1


def test_a_thank_you_or_a_sticker_gets_a_short_answer_not_the_menus(oa: Bridge) -> None:
    oa.follow("u-thanks")
    for said in ("Cảm ơn!", "ok", "Dạ vâng"):
        reply = oa.ask("u-thanks", said)[0]
        assert reply["text"].startswith("Dạ, cảm ơn Ông/Bà!") and not reply.get("attachment"), said
    seq = oa.last_seq()
    oa.post({"app_id": "sandbox-app", "sender": {"id": "u-thanks"}, "recipient": {"id": "x"},
             "event_name": "user_send_sticker", "timestamp": str(int(time.time() * 1000)),
             "message": {"msg_id": "m-sticker", "attachments": [
                 {"type": "sticker", "payload": {"id": "bfe458bf64fa8da4d4eb", "url": "https://zalo.me/s"}}]}})
    [reply] = oa.replies("u-thanks", 1, after=seq)
    assert reply["text"].startswith("Dạ, cảm ơn Ông/Bà!")


@pytest.mark.parametrize("typed", ["240612-0001", "H39-240612-0001", "000.00.23.H39-240612-001",
                                   "tra cứu hồ sơ 240612-0001"])
def test_part_of_a_code_is_answered_with_what_a_whole_code_looks_like(oa: Bridge, typed: str) -> None:
    """It used to get the general menu, as if the citizen had asked nothing."""
    oa.follow("u-partial")
    answer = oa.ask("u-partial", typed)[0]["text"]
    assert "chưa đầy đủ" in answer and "000.00.23.H39-240612-0001" in answer


def test_a_phone_number_typed_in_the_chat_is_not_taken_for_part_of_a_code(oa: Bridge) -> None:
    oa.follow("u-phone")
    assert "chưa đầy đủ" not in oa.ask("u-phone", "0909 123 456")[0]["text"]
