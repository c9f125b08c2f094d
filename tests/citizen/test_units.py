"""Pure parts: code and command parsing, signature variants, message limits, the
catalogue's contents, and the migrated schema against the query tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import inspect

from bridge.citizen import messages, wording
from bridge.citizen.procedures import load_catalogue
from bridge.citizen.signature import SignatureConfig, verify
from bridge.citizen.tables import metadata
from bridge.citizen.text import find_codes, fold, parse_command, second_factor
from bridge.ledger.engine import make_engine
from bridge.ledger.migrate import migrate
from bridge.sandbox.signing import zalo_signature
from bridge.settings import Centre, Settings

CODE = "000.00.23.H39-240612-0001"


@pytest.mark.parametrize("typed", [
    CODE, CODE.lower(), "000.00.23.H39 - 240612 - 0001", "000.00.23.H39240612-0001",
    "000.00.23.H39-2406120001", "000.00.23.H392406120001", "0000023H39-240612-0001",
    "mã: 000 . 00 . 23 . H39 – 240612 — 0001.", "tra-cuu=000.00.23.H39-240612-0001&x=1"])
def test_dossier_codes_are_found_however_typed(typed: str) -> None:
    assert find_codes(typed) == [CODE]


def test_several_codes_and_non_codes() -> None:
    text = f"{CODE} và 000.17.22.H56-210531-0001, lại {CODE.lower()}"
    assert find_codes(text) == [CODE, "000.17.22.H56-210531-0001"]
    assert find_codes("gọi 0909123456 hoặc 1.001193 ngày 12/06/2024") == []
    assert find_codes("000.00.23.H39-241399-0001") == []          # month 13: not a date


@given(st.text(max_size=300))
def test_parsers_never_crash_on_any_text(text: str) -> None:
    find_codes(text)
    parse_command(text)
    second_factor(text)
    fold(text)


def test_commands_are_accent_and_case_insensitive() -> None:
    assert fold("Thủ  TỤC Đăng ký") == "thu tuc dang ky"
    assert parse_command("THU TUC khai sinh").arg == "khai sinh"         # type: ignore[union-attr]
    assert parse_command("thủ tục: sổ đỏ").arg == "sổ đỏ"               # type: ignore[union-attr]
    assert parse_command("Hỗ trợ").name == "support"                    # type: ignore[union-attr]
    assert parse_command("huỷ đăng ký tin tức").name == "unsubscribe:tin-tuc"  # type: ignore[union-attr]
    assert parse_command("Hủy đăng ký").name == "unsubscribe:all"        # type: ignore[union-attr]
    assert parse_command("góp ý quầy 3 tốt").arg == "quầy 3 tốt"         # type: ignore[union-attr]
    assert parse_command(f"#danh-gia {CODE} 4").arg == f"{CODE} 4"       # type: ignore[union-attr]
    assert parse_command("#danh-gia x 9") is None
    assert parse_command("thủ tướng") is None and parse_command("xin chào") is None
    assert second_factor("12 34") == "1234" and second_factor("12345") is None
    assert second_factor("số 1234") is None


@pytest.mark.parametrize("typed, name", [
    ("hủy đăng ký nhận tin tức", "unsubscribe:tin-tuc"), ("Hủy đăng ký nhận tin", "unsubscribe:tin-tuc"),
    ("hủy đăng ký nhận thông báo khẩn cấp", "unsubscribe:khan-cap"),
    ("đăng ký nhận tin", "subscribe:tin-tuc"), ("Đăng ký nhận tin tức", "subscribe:tin-tuc"),
    ("đăng ký nhận thông báo khẩn cấp", "subscribe:khan-cap"),
    ("Đăng ký nhận tin khẩn cấp", "subscribe:khan-cap"),  # not the news ("đăng ký nhận tin")
    ("hủy đăng ký nhận tin khẩn cấp", "unsubscribe:khan-cap"),
])
def test_subscriptions_are_read_by_their_longest_wording(typed: str, name: str) -> None:
    """Cancelling the news must not cancel the emergency alerts too."""
    assert parse_command(typed).name == name  # type: ignore[union-attr]


def test_signature_variants_and_refusals() -> None:
    raw, stamp = b'{"event_name":"follow","timestamp":"1"}', "1"
    cfg = SignatureConfig("app", "oa", "secret")
    by_app, by_oa = zalo_signature("app", raw, stamp, "secret"), zalo_signature("oa", raw, stamp, "secret")
    assert verify(cfg, "mac=" + by_app, raw, stamp) == "app_id/mac"
    assert verify(cfg, by_app.upper(), raw, stamp) == "app_id/bare"
    assert verify(cfg, " MAC=" + by_oa, raw, stamp) == "oa_id/mac"
    assert verify(cfg, by_oa, raw, stamp) == "oa_id/bare"
    assert verify(cfg, by_app, raw + b" ", stamp) is None
    assert verify(cfg, by_app, raw, "2") is None
    assert verify(cfg, None, raw, stamp) is None
    assert verify(SignatureConfig("app", "oa", ""), zalo_signature("app", raw, stamp, ""), raw,
                  stamp) is None, "an unconfigured secret accepts nothing"
    # One source has the app secret as the last term: accepted, and said so.
    with_app = SignatureConfig("app", "oa", "secret", "app-secret")
    assert verify(with_app, zalo_signature("app", raw, stamp, "app-secret"), raw, stamp) \
        == "app_id+app_secret/bare"
    assert verify(with_app, "mac=" + zalo_signature("oa", raw, stamp, "app-secret"), raw, stamp) \
        == "oa_id+app_secret/mac"
    assert verify(with_app, "mac=" + by_app, raw, stamp) == "app_id/mac"
    assert verify(cfg, zalo_signature("app", raw, stamp, "app-secret"), raw, stamp) is None


def test_messages_respect_zalo_limits() -> None:
    long = messages.text("Đ" * 5000)["text"]
    assert len(long) == 2000 and long.endswith("…")
    with pytest.raises(ValueError):
        messages.with_buttons("x", [messages.query_button("a", "a")] * 6)
    with pytest.raises(ValueError):
        messages.query_button("a" * 41, "x").to_json()
    settings = Settings()
    menu = wording.menu_buttons(settings)
    assert len(menu) == 5 and all(len(b.title) <= 40 for b in menu)
    for text in (wording.HELP, wording.welcome(settings), wording.SHARE_SUBTITLE):
        assert len(text) <= 2000
    assert len(wording.SHARE_TITLE) <= 100 and len(wording.SHARE_SUBTITLE) <= 500


def test_the_sample_catalogue_has_thirty_real_procedures_with_every_field() -> None:
    catalogue = load_catalogue()
    procs = catalogue.procedures
    assert len(procs) >= 30 and len({p.code for p in procs}) == len(procs)
    for p in procs:
        assert p.code and p.name and p.time_limit and p.fee and p.documents and p.where, p.code
        assert p.code_verified or "đối chiếu" in p.note, f"{p.code}: unverified code not marked"
    names = " | ".join(p.name.lower() for p in procs)
    for topic in ("khai sinh", "kết hôn", "khai tử", "chứng thực bản sao", "giấy chứng nhận quyền "
                  "sử dụng đất", "giấy phép xây dựng", "hộ kinh doanh", "lý lịch tư pháp",
                  "giấy phép lái xe"):
        assert topic in names, topic
    assert any(not p.code_verified for p in procs)


def test_a_csv_catalogue_can_replace_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "procedures.csv"
    path.write_text("code,name,field,time_limit,fee,documents,where,keywords,code_verified\n"
                    "9.999999,Cấp phép đào đường,Giao thông,05 ngày,Không,Đơn|Bản vẽ,UBND xã,"
                    "đào đường|sửa cống,true\n", encoding="utf-8")
    catalogue = load_catalogue(path)
    found = catalogue.search("dao duong")
    assert [p.code for p in found] == ["9.999999"] and found[0].documents == ("Đơn", "Bản vẽ")


def test_migrated_schema_matches_the_citizen_query_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    found = inspect(engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in found.get_columns(table.name)} == {c.name for c in table.columns}
    indexes = {i["name"] for i in found.get_indexes("notifications")}
    assert {"notifications_phone", "notifications_dossier_code",
            "notifications_provider_message"} <= indexes
    engine.dispose()


def test_the_second_factor_wording_fits_one_or_several_dossiers_and_the_lock_is_exact() -> None:
    one = wording.challenge([CODE])
    # The code's own last four digits ("…-0001") must not be what the question ends on.
    assert one.startswith(f"Hồ sơ {CODE}: ") and one.endswith("thì gửi 4321).")
    several = wording.challenge([CODE, "000.00.23.H39-240613-0002"])
    assert "hồ sơ nào khai số đó sẽ được hiển thị" in several  # two applicants are possible
    # Unknown codes count as failures too: not "entered wrong digits more than 5 times".
    assert "tra cứu không thành công 5 lần" in wording.locked(5, "10:30", "0272 3550 055")
    # No hotline configured: the desk, not "gọi tổng đài ." with no number.
    for text in (wording.locked(5, "10:30", ""), wording.no_phone(CODE, ""),
                 wording.phone_taken("0909123456", "")):
        assert "tổng đài" not in text and "liên hệ Bộ phận Một cửa nơi nộp hồ sơ" in text


@pytest.mark.parametrize("query, first", [
    ("cap lai CCCD", "căn cước"),                # not "Cấp lại giấy phép lái xe"
    ("cấp lại căn cước", "căn cước"),
    ("cấp lại xyzzy", None),                     # nothing but what is done matches
    ("cấp lại giấy phép lái xe", "lái xe"),
    ("làm giấy khai sinh cho con", "khai sinh"),
    ("sang tên sổ đỏ", "biến động"),
])
def test_a_search_is_about_what_is_asked_for_not_only_what_is_done(query: str, first: str | None) -> None:
    found = load_catalogue().search(query)
    if first is None:
        assert found == [], [p.name for p in found]
    else:
        assert found and first in found[0].name.lower(), [p.name for p in found]


def test_long_button_titles_end_at_a_word() -> None:
    centre = Centre(name="Trung tâm Phục vụ hành chính công xã Cần Giuộc", hotline="0272 3874 123")
    _, buttons = wording.support([centre, centre])
    assert buttons[0].title == "Gọi Trung tâm Phục vụ hành chính công…"  # not "…xã C…"
