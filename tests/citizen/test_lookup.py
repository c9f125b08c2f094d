"""Dossier lookup by code: details for the linked owner, a second factor for anyone else,
limited attempts, tolerant code parsing, and inert injection strings."""

from __future__ import annotations

import time

import pytest

from citizen_harness import CODE, PHONE, Bridge, metric
from sqlalchemy import func, select

from bridge.ledger.tables import dossier_state, notifications

NAME, PROCEDURE = "Nguyễn Văn An", "Cấp giấy chứng nhận quyền sử dụng đất lần đầu"


def test_linked_owner_sees_status_appointment_and_next_step(oa: Bridge) -> None:
    oa.dossier(due_at="2099-06-20T09:00:00Z")
    oa.link("u-owner")
    reply = oa.ask("u-owner", f"Cho tôi hỏi hồ sơ {CODE} ạ")[0]["text"]
    assert CODE in reply and PROCEDURE in reply
    assert "Đã được tiếp nhận" in reply and "Ngày hẹn trả kết quả: 20/06/2099" in reply
    assert "chưa cần làm gì thêm" in reply and len(reply) <= 2000


@pytest.mark.parametrize("status, says, not_said", [
    (2, "đã quá ngày hẹn trả kết quả (20/06/2024)", "chưa cần làm gì thêm"),  # overdue
    (5, "thời hạn giải quyết được tính lại", "Ngày hẹn trả kết quả"),
    (7, "Hồ sơ đã được rút", "Ngày hẹn trả kết quả"),
    (3, "để được giải thích và hướng dẫn", "nộp lại"),  # a refusal may be final
])
def test_the_summary_says_only_what_still_applies(oa: Bridge, status: int, says: str,
                                                  not_said: str) -> None:
    oa.dossier(status=status, due_at="2024-06-20T09:00:00Z", note="Thiếu bản sao CCCD")
    oa.link("u-state")
    reply = oa.ask("u-state", CODE)[0]["text"]
    assert says in reply and not_said not in reply, reply


def test_unlinked_user_must_give_the_last_four_digits(oa: Bridge) -> None:
    oa.dossier(status=5, note="Bản sao giấy tờ tùy thân")
    before = metric("onestop_lookups_total", result="challenged")
    oa.follow("u-stranger")
    question = oa.ask("u-stranger", CODE)[0]["text"]
    assert "4 chữ số cuối" in question and CODE in question
    for secret in (NAME, PROCEDURE, "Bản sao giấy tờ", "20/06/2024", "0909"):
        assert secret not in question, "nothing about the dossier before the second factor"
    assert metric("onestop_lookups_total", result="challenged") == before + 1
    details = oa.ask("u-stranger", "3456")[0]["text"]
    assert "Cần bổ sung giấy tờ" in details and "Bản sao giấy tờ tùy thân" in details
    # Unlocked for a while: asking again needs no new question.
    again = oa.ask("u-stranger", CODE)[0]["text"]
    assert "Cần bổ sung giấy tờ" in again


def test_wrong_digits_are_limited_and_refusals_counted(oa: Bridge) -> None:
    oa.dossier()
    refused = metric("onestop_lookups_total", result="refused")
    oa.follow("u-guess")
    oa.follow("u-other")
    oa.ask("u-guess", CODE)
    first = oa.ask("u-guess", "0000")[0]["text"]
    assert "chưa đúng" in first and "còn 2 lần" in first
    assert "còn 1 lần" in oa.ask("u-guess", "1111")[0]["text"]
    locked = oa.ask("u-guess", "2222")[0]["text"]                 # third failure: max is 3
    assert "tạm khóa" in locked and "0272 3550 055" in locked
    # Even the right digits, or a fresh question, are refused while locked.
    assert "tạm khóa" in oa.ask("u-guess", CODE)[0]["text"]
    assert "tạm khóa" in oa.ask("u-guess", "3456")[0]["text"]
    assert metric("onestop_lookups_total", result="refused") >= refused + 2
    # Another citizen is not affected, and the owner always sees their own dossier.
    assert "4 chữ số cuối" in oa.ask("u-other", CODE)[0]["text"]
    oa.replies("u-guess", 1, after=oa.share("u-guess"))
    assert "Đã được tiếp nhận" in oa.ask("u-guess", CODE)[0]["text"]


def test_codes_with_odd_spacing_case_and_separators_are_found(oa: Bridge) -> None:
    oa.dossier()
    oa.dossier(id=2, code="000.00.23.H39-240613-0002")
    oa.link("u-odd")
    for typed in ("000.00.23.h39 - 240612 - 0001", "000.00.23.H39 240612 0001",
                  "000.00.23.H392406120001", "mã hồ sơ: 000 . 00 . 23 . H39-240612–0001",
                  "https://zalo.me/1032900368640139458?tra-cuu=000.00.23.H39-240612-0001"):
        reply = oa.ask("u-odd", typed)[0]["text"]
        assert CODE in reply and "Đã được tiếp nhận" in reply, typed
    both = oa.ask("u-odd", f"{CODE}, 000.00.23.h39-240613-0002", count=2)
    texts = "\n".join(m["text"] for m in both)
    assert CODE in texts and "000.00.23.H39-240613-0002" in texts


def test_the_receipts_link_sent_as_a_link_message_is_looked_up(oa: Bridge) -> None:
    """Opening the QR code in Zalo sends `user_send_link`, not text."""
    oa.dossier()
    oa.link("u-qr")
    seq = oa.last_seq()
    url = f"https://zalo.me/{oa.settings.oa.oa_id}?tra-cuu={CODE}"
    oa.post({"app_id": "sandbox-app", "sender": {"id": "u-qr"}, "recipient": {"id": "x"},
             "event_name": "user_send_link", "timestamp": str(int(time.time() * 1000)),
             "message": {"msg_id": "m-qr", "text": "",
                         "attachments": [{"type": "link", "payload": {"url": url}}]}})
    [reply] = oa.replies("u-qr", 1, after=seq)
    assert CODE in reply["text"] and "Đã được tiếp nhận" in reply["text"]


def test_a_code_in_a_question_is_looked_up_whatever_word_comes_first(oa: Bridge) -> None:
    oa.dossier()
    oa.link("u-ask")
    for typed in (f"Thủ tục của hồ sơ {CODE} đến đâu rồi?", f"Hỗ trợ giúp tôi hồ sơ {CODE} bao giờ xong?"):
        reply = oa.ask("u-ask", typed)[0]["text"]
        assert CODE in reply and "Đã được tiếp nhận" in reply, typed


def test_a_linked_citizen_asking_to_look_up_sees_their_dossiers_without_typing_a_code(
        oa: Bridge) -> None:
    oa.link("u-menu")  # no dossier yet: the link confirmed none
    oa.settle()
    assert "gửi mã hồ sơ" in oa.ask("u-menu", "Tra cứu hồ sơ")[0]["text"]
    oa.dossier()
    head, details = oa.ask("u-menu", "Tra cứu hồ sơ", count=2)
    assert "Ông/Bà có 1 hồ sơ đang được giải quyết" in head["text"]
    assert CODE in details["text"] and "Đã được tiếp nhận" in details["text"]
    oa.follow("u-stranger")  # not linked
    assert "gửi mã hồ sơ" in oa.ask("u-stranger", "Tra cứu hồ sơ")[0]["text"]


def test_an_unknown_code_is_answered_and_counts_as_a_failure(oa: Bridge) -> None:
    oa.follow("u-miss")
    reply = oa.ask("u-miss", "000.00.23.H39-240612-9999")[0]["text"]
    assert "Không tìm thấy hồ sơ mã số 000.00.23.H39-240612-9999" in reply


def test_sql_and_template_injection_strings_are_inert(oa: Bridge) -> None:
    oa.dossier(status=5, note="{kinh_gui} {{7*7}}")  # even the database's own text is data
    oa.link("u-inj")
    attacks = [f"{CODE}'; DROP TABLE notifications;--",
               "000.00.23.H39-240612-0001' OR '1'='1",
               "thủ tục ' OR 1=1; DELETE FROM dossier_state; --",
               "{ma_ho_so} {kinh_gui.__class__} {0.__class__.__mro__} ${7*7} {{7*7}} %s %(x)s",
               "góp ý {0} {{config}} '); DROP TABLE feedback; --",
               "thủ tục {__import__('os').system('id')}"]
    for text in attacks:
        for message in oa.ask("u-inj", text):
            assert "49" not in message["text"] and "__class__" not in message["text"].replace(
                text, "") and "uid=" not in message["text"]
    with oa.ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notifications)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(dossier_state)).scalar() == 1
    details = oa.ask("u-inj", CODE)[0]["text"]
    assert "Nội dung cần bổ sung" in details or "bổ sung: {kinh_gui} {{7*7}}" in details
