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
    assert "sai quá số lần cho phép" in over["text"] and card["message_type"] == "request_user_info"
    # The right code is no use once the tries are spent: it is not a pending code any more.
    oa.ask("u-stranger", sent["template_data"]["otp"])
    assert followers.user_for_phone(PHONE) is None
    assert metric("onestop_link_codes_total", outcome="used_up") >= 1
    # The owner, who reads the code in their own Zalo, links as usual.
    oa.link("u-owner")
    assert followers.user_for_phone(PHONE) == "u-owner"


def test_a_second_share_within_a_minute_sends_no_second_code(oa: Bridge) -> None:
    """A form sent twice, or used to flood someone's Zalo with codes."""
    _share(oa, "u-twice")
    seq = oa.last_seq()
    oa.user_event("user_submit_info", "u-twice", phone=PHONE)
    assert "cách đây ít phút" in oa.replies("u-twice", 1, after=seq)[0]["text"]
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


def test_a_number_gets_at_most_three_pending_codes_from_other_accounts(proof: Any) -> None:
    """Accounts made to flood someone's Zalo with codes."""
    p, codes, now, _ledger = proof
    assert [p.start(f"u{i}", PHONE) for i in range(5)] == ["sent"] * 3 + ["busy"] * 2
    assert len(codes.sent) == 3
    now[0] += CODE_TTL_S + 1  # those codes expired: the number may get one again
    assert p.start("u4", PHONE) == "sent"


def test_a_code_that_could_not_be_sent_leaves_nothing_pending(proof: Any) -> None:
    p, codes, _now, _ledger = proof
    codes.fail = BridgeError("Zalo account not existed", code=-118)
    with pytest.raises(BridgeError):
        p.start("u", PHONE)
    assert p.answer("u", "123456") is None
