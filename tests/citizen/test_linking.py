"""A shared number is linked only once its owner types back the code ZNS delivered to it:
typing a citizen's number into the form gets a stranger none of their dossiers, none of
their notices, and does not lock the owner out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from citizen_harness import CODE, PHONE, Bridge, MakeBridge, metric
from sqlalchemy import select

from bridge.citizen.linking import CODE_TTL_S, RESEND_AFTER_S, PhoneProof
from bridge.citizen.tables import link_codes
from bridge.errors import BridgeError
from bridge.ledger import Ledger, LedgerFollowers


def _share(oa: Bridge, user: str, phone: str = PHONE) -> str:
    oa.user_event("follow", user)
    oa.replies(user, 2)
    seq = oa.last_seq()
    oa.user_event("user_submit_info", user, phone=phone)
    return oa.replies(user, 1, after=seq)[0]["text"]


def test_a_stranger_who_types_a_citizens_number_gets_nothing_of_it(oa: Bridge) -> None:
    [notice] = oa.dossier(status=5, note="Bản sao giấy tờ tùy thân")
    asked = _share(oa, "u-stranger")
    assert "Mã xác nhận gồm 6 chữ số vừa được gửi qua Zalo đến số 0909123456" in asked
    assert CODE not in asked and "Bản sao giấy tờ" not in asked
    [sent] = oa.messages(channel="zns", phone=PHONE)
    assert len(sent["template_data"]["otp"]) == 6 and sent["template_data"]["otp"].isdigit()
    followers = LedgerFollowers(oa.ledger.engine)
    assert followers.user_for_phone(PHONE) is None
    assert oa.deliver(notice) == "zns"  # to the number's own Zalo, not to the stranger
    wrong = "000000" if sent["template_data"]["otp"] != "000000" else "111111"
    assert "còn 2 lần thử" in oa.ask("u-stranger", wrong)[0]["text"]
    assert "còn 1 lần thử" in oa.ask("u-stranger", wrong)[0]["text"]
    over, card = oa.ask("u-stranger", wrong, count=2)
    assert "nhập sai mã xác nhận quá 3 lần" in over["text"]
    assert card["message_type"] == "request_user_info"
    # The right code is no use once the tries are spent: it is not a pending code any more.
    oa.ask("u-stranger", sent["template_data"]["otp"])
    assert followers.user_for_phone(PHONE) is None
    assert metric("onestop_link_codes_total", outcome="used_up") >= 1
    # The owner, who reads the code in their own Zalo, links as usual — typing it with words.
    oa.follow("u-owner")
    seq = oa.last_seq()
    oa.user_event("user_submit_info", "u-owner", phone=PHONE)
    oa.replies("u-owner", 1, after=seq)
    code = oa.link_code(PHONE, after=seq)
    linked = oa.ask("u-owner", f"Mã xác nhận: {code[:3]} {code[3:]}", count=2)[0]["text"]
    assert "đã được liên kết" in linked
    assert followers.user_for_phone(PHONE) == "u-owner"


def test_a_second_share_within_a_minute_sends_no_second_code(oa: Bridge) -> None:
    """A form sent twice, or used to flood someone's Zalo with codes."""
    _share(oa, "u-twice")
    seq = oa.last_seq()
    oa.user_event("user_submit_info", "u-twice", phone=PHONE)
    assert "vừa được gửi" in oa.replies("u-twice", 1, after=seq)[0]["text"]
    assert len(oa.messages(channel="zns", phone=PHONE)) == 1


def test_no_code_at_night_says_when_to_try_again(make_bridge: MakeBridge) -> None:
    oa = make_bridge(scenario={"night_window": "always"})
    assert "sau 6 giờ sáng" in _share(oa, "u-night")
    assert LedgerFollowers(oa.ledger.engine).user_for_phone(PHONE) is None


def test_without_verification_a_shared_number_is_linked_as_typed(make_bridge: MakeBridge) -> None:
    """`oa.verify_shared_phone = false`: for an OA without an approved code template."""
    oa = make_bridge(verify_shared_phone=False)
    assert "đã được liên kết" in _share(oa, "u-plain")
    assert not oa.messages(channel="zns")


class Codes:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail: BridgeError | None = None

    def send_link_code(self, phone: str, code: str, *, tracking: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append((phone, code))
        return "msg"


@pytest.fixture()
def proof(tmp_path: Path) -> Any:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    now = [1_800_000_000.0]
    codes = Codes()
    yield PhoneProof(ledger.engine, codes, lambda: now[0]), codes, now, ledger
    ledger.close()


def test_codes_expire_are_stored_hashed_and_resent_only_after_a_minute(proof: Any) -> None:
    p, codes, now, ledger = proof
    assert p.start("u", PHONE) == "sent"
    [(phone, code)] = codes.sent
    with ledger.engine.connect() as conn:
        stored = conn.execute(select(link_codes)).one()
    assert code not in (stored.code_hash, str(stored))
    assert p.start("u", PHONE) == "recent" and len(codes.sent) == 1
    now[0] += RESEND_AFTER_S
    assert p.start("u", PHONE) == "sent" and len(codes.sent) == 2
    code = codes.sent[-1][1]
    now[0] += CODE_TTL_S + 1
    expired = p.answer("u", code)
    assert expired is not None and expired.outcome == "expired"
    assert p.answer("u", code) is None  # nothing pending any more
    p.start("u", PHONE)
    answer = p.answer("u", codes.sent[-1][1])
    assert answer is not None and (answer.outcome, answer.phone) == ("proved", PHONE)


def test_codes_are_limited_per_number_and_per_account_whatever_the_outcome(proof: Any) -> None:
    """A verification found the minute's limit bypassed: spending the tries (or sharing
    another number) and sharing again sent 10 codes in 10 s, 30 guesses at the number."""
    p, codes, now, _ledger = proof
    assert [p.start(f"u{i}", PHONE) for i in range(5)] == ["sent"] * 3 + ["busy"] * 2
    for _ in range(3):  # spending a code's tries does not make room for another
        p.answer("u0", "999999" if codes.sent[0][1] != "999999" else "888888")
    assert p.start("u0", PHONE) == "busy"
    others = ["84912000001", "84912000002", "84912000003", "84912000004"]
    assert [p.start("v", number) for number in others] == ["sent"] * 3 + ["busy"]
    for hour in range(1, 8):  # the day's ten codes to the number, three an hour at most
        now[0] += 3600
        p.start(f"w{hour}", PHONE)
    assert sum(1 for number, _ in codes.sent if number == PHONE) == 10
    assert p.start("late", PHONE) == "busy"
    assert len(codes.sent) == 13


def test_a_code_that_could_not_be_sent_leaves_nothing_pending(proof: Any) -> None:
    p, codes, _now, _ledger = proof
    codes.fail = BridgeError("Zalo account not existed", code=-118)
    with pytest.raises(BridgeError):
        p.start("u", PHONE)
    assert p.answer("u", "123456") is None
