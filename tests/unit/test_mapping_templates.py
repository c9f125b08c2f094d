"""Source mapping by configuration, and the Vietnamese notices citizens read."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bridge.errors import BadInputError
from bridge.mapping import SourceMapping
from bridge.model import KINDS, UNAVAILABLE, Unreadable
from bridge.phone import mask_phone, normalise_phone
from bridge.pipeline import Pipeline
from bridge.settings import Settings, SourceSettings, load_settings
from bridge.templates import fee_text, format_vnd, load_templates
from bridge.transitions import MemoryStateStore
from events import event, present, row

VENDOR = SourceSettings(
    columns={"id": "HoSoId", "code": "MaHoSo", "status": "TrangThaiHoSoId",
             "applicant_phone": "SoDienThoaiChuHoSo", "due_at": "NgayHenTra",
             "procedure_name": "TenThuTuc", "fee_amount": "PhiLePhi"},
    status_map={"TIEP_NHAN": 2, "BO_SUNG": 5, "CO_KET_QUA": 9},
    column_types={"due_at": "timestamp_us", "fee_amount": "decimal_base64:2"})


def test_vendor_columns_and_status_values_map_to_the_canonical_dossier() -> None:
    mapping = SourceMapping(VENDOR)
    dossier = mapping.dossier({"HoSoId": 7, "MaHoSo": "000.00.14.H56-200203-0118",
                               "TrangThaiHoSoId": "BO_SUNG", "SoDienThoaiChuHoSo": "0912345678",
                               "NgayHenTra": 1718874000000000, "TenThuTuc": "Đăng ký kết hôn",
                               "PhiLePhi": "AdzWUA=="})
    assert dossier.status == 5
    assert dossier.due_at == datetime(2024, 6, 20, 2, 0, tzinfo=UTC)  # the same instant
    assert dossier.fee_amount == Decimal("312500.00")
    assert dossier.agency_name is UNAVAILABLE  # a column this vendor does not have


@pytest.mark.parametrize(("settings", "given", "expected"), [
    # The reference schema's NUMERIC(14,2), base64 without its scale (the connector's default).
    (SourceSettings(), "B3NZQA==", Decimal("1250000.00")),
    (SourceSettings(), "150000.50", Decimal("150000.50")),  # decimal.handling.mode=string
    (SourceSettings(), 150000.5, Decimal("150000.5")),  # double
    # Configured: a digits-only string is a number (as base64, "1234" is a negative fee).
    (SourceSettings(column_types={"fee_amount": "decimal_base64:2"}), "1234", Decimal("1234")),
    (SourceSettings(column_types={"fee_amount": "decimal_base64:0"}), "B3NZQA==", Decimal(125000000)),
])
def test_a_fee_is_read_in_each_encoding(settings: SourceSettings, given: object, expected: Decimal) -> None:
    assert SourceMapping(settings).dossier(row(fee_amount=given)).fee_amount == expected


def test_a_renamed_fee_column_without_a_schema_says_what_to_configure() -> None:
    """Its scale is not the reference schema's to assume: the fee notice is refused."""
    mapping = SourceMapping(SourceSettings(columns={"fee_amount": "le_phi"}))
    fee = mapping.dossier({**row(), "le_phi": "B3NZQA=="}).fee_amount
    assert isinstance(fee, Unreadable) and "le_phi" in fee.reason
    assert "'decimal_base64:<scale>'" in fee.reason
    configured = SourceMapping(VENDOR).dossier({"MaHoSo": "X-1", "TrangThaiHoSoId": "BO_SUNG",
                                                "SoDienThoaiChuHoSo": "0909123456",
                                                "PhiLePhi": "no base64!"}).fee_amount
    assert isinstance(configured, Unreadable)
    assert "neither a number nor a base64 decimal" in configured.reason


@pytest.mark.parametrize("field, typo", [("status", "TrangThaiHoSo"),
                                         ("applicant_phone", "SoDienThoai")])
def test_a_mapped_column_the_row_lacks_is_named_not_silently_ignored(field, typo) -> None:
    """A typo in [source.columns]: no status meant no notice and no error, a lost phone
    "no phone" for every citizen."""
    mapping = SourceMapping(SourceSettings(columns={**VENDOR.columns.model_dump(), field: typo},
                                           status_map=VENDOR.status_map))
    vendor_row = {"HoSoId": 4, "MaHoSo": "X-1", "TrangThaiHoSoId": "BO_SUNG",
                  "SoDienThoaiChuHoSo": "0909123456"}
    with pytest.raises(BadInputError, match=rf"column '{typo}' \(\[source.columns\] {field}\) is "
                                            r"not in the event's row, which has HoSoId, MaHoSo"):
        mapping.dossier(vendor_row)


def test_integers_in_date_columns_are_never_guessed() -> None:
    mapping = SourceMapping(SourceSettings())
    with pytest.raises(BadInputError, match="units are never guessed"):
        mapping.moment({"due_at": 1718874000000}, "due_at")


def test_naive_timestamps_are_local_time_of_the_source() -> None:
    mapping = SourceMapping(SourceSettings())
    moment = mapping.moment({"due_at": "2024-06-20T08:00:00"}, "due_at")
    assert moment == datetime(2024, 6, 20, 1, 0, tzinfo=UTC)


def test_a_status_map_replaces_the_national_codes_and_says_so() -> None:
    """A vendor's own 3 may not be the portal's 3: once mapped, every value must be listed."""
    mapping = SourceMapping(SourceSettings(status_map={"42": 2}))
    assert mapping.status({"status": "42"}) == 2
    with pytest.raises(BadInputError, match=r"must list every value the database stores "
                                            r"\(national codes too, e.g. \"2\" = 2\)"):
        mapping.status({"status": 2})


def test_status_map_and_template_keys_from_the_environment_keep_working(monkeypatch) -> None:
    """An environment override's key arrives lower-cased: the vendor's CHO_DUYET was never
    matched, and ZNS template overrides were ignored."""
    monkeypatch.setenv("ONESTOP_SOURCE__STATUS_MAP__CHO_DUYET", "1")
    monkeypatch.setenv("ONESTOP_ZALO__ZNS_TEMPLATES__RESULT_READY", "312347")
    settings = load_settings(None)
    assert SourceMapping(settings.source).status({"status": "CHO_DUYET"}) == 1
    assert settings.zalo.zns_templates == {"RESULT_READY": "312347"}
    with pytest.raises(ValueError, match="another spelling"):
        SourceSettings(status_map={"Cho": 1, "CHO": 2})


def test_reasons_kept_per_status_are_read_from_their_own_columns(monkeypatch) -> None:
    """Vendors keep the refusal and the supplement reasons apart (LyDoTuChoi, LyDoBoSung); a
    view cannot help log-based capture, which sees tables."""
    monkeypatch.setenv("ONESTOP_SOURCE__NOTE_COLUMNS__3", "LyDoTuChoi")
    monkeypatch.setenv("ONESTOP_SOURCE__NOTE_COLUMNS__5", "LyDoBoSung")
    mapping = SourceMapping(load_settings(None).source)
    vendor = {"id": 7, "code": "000.00.14.H56-200203-0118", "applicant_phone": "0912345678",
              "LyDoTuChoi": "Không thuộc thẩm quyền", "LyDoBoSung": "Thiếu bản sao CCCD",
              "note": "Chờ ý kiến Sở Xây dựng"}
    assert mapping.dossier({**vendor, "status": 3}).note == "Không thuộc thẩm quyền"
    assert mapping.dossier({**vendor, "status": 5}).note == "Thiếu bản sao CCCD"
    assert mapping.dossier({**vendor, "status": 4}).note == "Chờ ý kiến Sở Xây dựng"
    del vendor["LyDoBoSung"]  # a typo in the setting: said, not a notice without its reason
    with pytest.raises(BadInputError, match=r"'LyDoBoSung' \(\[source.note_columns\] 5\)"):
        mapping.dossier({**vendor, "status": 5})
    with pytest.raises(ValueError, match="note_columns"):
        SourceSettings(note_columns={11: "LyDo"})


def test_settings_reject_status_codes_outside_the_national_list() -> None:
    with pytest.raises(ValueError):
        SourceSettings(status_map={"X": 11})


@pytest.mark.parametrize("raw, expected", [
    ("0909 123 456", "84909123456"), ("+84 909.123.456", "84909123456"),
    ("84909123456", "84909123456"), ("909123456", "84909123456"), ("0084 909 123 456", "84909123456"),
    ("84 0909 123 456", "84909123456"), ("+84 (0) 909 123 456", "84909123456"),
    ("0209 123 456", None), ("12345", None), ("", None), (None, None), ("090912345678", None),
    ("840209123456", None), (UNAVAILABLE, None), (909123456, "84909123456"),
])
def test_phone_normalisation(raw, expected) -> None:
    assert normalise_phone(raw) == expected


def test_phone_masking_hides_the_middle() -> None:
    assert mask_phone("84912345678") == "849xxxxx678"
    assert mask_phone(None) == "-"


@pytest.mark.parametrize("amount, text", [
    (Decimal("1250000.00"), "1.250.000 đồng"), (Decimal("2000"), "2.000 đồng"),
    (Decimal("999"), "999 đồng"), (Decimal("1234567.5"), "1.234.567,50 đồng"),
    (Decimal("0"), "0 đồng"), (Decimal("-50000"), "-50.000 đồng"),
])
def test_money_in_vietnamese_format(amount, text) -> None:
    assert format_vnd(amount) == text


@pytest.mark.parametrize("amount", [None, Decimal("0"), Decimal("-50000"), Decimal("0.004")])
def test_a_fee_notice_without_an_amount_to_pay_points_to_the_agency(amount) -> None:
    """A citizen is never asked to pay "0 đồng" or "-50.000 đồng"."""
    assert fee_text(amount) == "theo thông báo của cơ quan giải quyết"
    assert "số tiền theo thông báo của cơ quan giải quyết" in notice(6, fee_amount=None if amount is None else str(amount))["text"]


def notice(kind_status: int, **changes) -> dict:
    pipeline = Pipeline(Settings())
    [n] = pipeline.notify(present(pipeline.decode(json.dumps(event("c", row(status=kind_status, **changes))))),
                          MemoryStateStore())
    return n.to_json()


def test_received_shows_code_procedure_and_appointment_in_local_time() -> None:
    n = notice(2, due_at="2024-06-20T18:00:00Z")  # 01:00 next day in Ho Chi Minh City
    assert "000.00.23.H39-240612-0001" in n["text"]
    assert "Cấp giấy chứng nhận quyền sử dụng đất lần đầu" in n["text"]
    assert "Ngày hẹn trả kết quả: 21/06/2024" in n["text"]
    assert n["template_data"]["ngay_hen_tra"] == "21/06/2024"
    assert n["recipient"] == {"phone": "84909123456"}


def test_a_receipt_without_a_reception_time_dates_it_by_the_change() -> None:
    """A desk that leaves received_at empty: the receipt carries the day of the status
    change, not "ngày chưa xác định"."""
    n = notice(2, received_at=None, updated_at="2024-06-12T17:30:00Z")  # 00:30 on the 13th
    assert "ngày 13/06/2024" in n["text"] and n["template_data"]["ngay_tiep_nhan"] == "13/06/2024"


def test_fee_request_shows_the_amount_the_vietnamese_way() -> None:
    assert "1.250.000 đồng" in notice(6)["text"]


@pytest.mark.parametrize("typed, shown", [
    ("NGUYỄN VĂN AN", "Kính gửi Ông/Bà Nguyễn Văn An,"),
    ("ĐỖ THỊ HỒNG", "Kính gửi Ông/Bà Đỗ Thị Hồng,"),
    ("Nguyễn Văn An", "Kính gửi Ông/Bà Nguyễn Văn An,"),
    ("CÔNG TY TNHH ABC", "Kính gửi Ông/Bà CÔNG TY TNHH ABC,"),
    (unicodedata.normalize("NFD", "Lê Thị Hà"), "Kính gửi Ông/Bà Lê Thị Hà,"),
])
def test_the_applicant_is_addressed_as_a_letter_would(typed, shown) -> None:
    """A name typed in capitals is not shouted back; a decomposed one is composed (it
    counted twice its letters against a ZNS parameter's maxLength)."""
    rendered = notice(2, applicant_name=typed)
    assert rendered["text"].startswith(shown)
    assert rendered["template_data"]["ten_nguoi_nop"] == shown.removeprefix("Kính gửi Ông/Bà ")[:-1]


def test_supplement_and_refusal_carry_the_reason() -> None:
    assert "Bổ sung bản vẽ sơ đồ thửa đất" in notice(5, note="Bổ sung bản vẽ sơ đồ thửa đất")["text"]
    assert "Không thuộc thẩm quyền" in notice(3, note="Không thuộc thẩm quyền")["text"]


def test_a_reason_typed_with_its_full_stop_ends_the_sentence_once() -> None:
    text = notice(5, note="Thiếu bản sao CCCD. ")["text"]
    assert "Nội dung cần bổ sung: Thiếu bản sao CCCD. Đề nghị" in text and ".." not in text


@pytest.mark.parametrize("status", [3, 5, 8])
def test_a_missing_reason_says_whom_to_ask_once(status) -> None:
    """Not "no reason given" in writing, and not "please contact" twice."""
    text = notice(status, note=None)["text"]
    assert ": Bộ phận Một cửa sẽ cho biết cụ thể khi Ông/Bà liên hệ." in text
    assert "chưa được ghi rõ" not in text and text.count("vui lòng liên hệ") <= 1


def test_result_ready_says_where_to_collect() -> None:
    assert "Chi nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc" in notice(9)["text"]


def test_apology_has_old_and_new_dates_and_the_reason() -> None:
    pipeline, store = Pipeline(Settings()), MemoryStateStore()
    pipeline.notify(present(pipeline.decode(json.dumps(event("c", row(status=4))))), store)
    [n] = pipeline.notify(present(pipeline.decode(json.dumps(event(
        "u", row(status=4, due_at="2024-06-27T09:00:00Z", note="Chờ ý kiến Sở Xây dựng"))))), store)
    assert "20/06/2024" in n.text and "27/06/2024" in n.text and "Chờ ý kiến Sở Xây dựng" in n.text


def test_missing_phone_is_null_not_an_error() -> None:
    assert notice(2, applicant_phone=None)["recipient"] == {"phone": None}
    assert notice(2, applicant_phone="12345")["recipient"] == {"phone": None}


def test_braces_typed_by_staff_are_inert_text() -> None:
    text = notice(5, note="{ma_ho_so} {0} {__class__} <script>")["text"]
    assert "{ma_ho_so} {0} {__class__} <script>" in text


@pytest.mark.parametrize("version", ["tt01-2018", "tt03-2025"])
def test_every_kind_has_a_complete_vietnamese_template(version) -> None:
    templates = load_templates(version)["kinds"]
    for kind in KINDS:
        spec = templates[kind]
        assert "{ma_ho_so}" in spec["text"] and "{ten_thu_tuc}" in spec["text"]
        assert "ma_ho_so" in spec["params"]
        assert re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", spec["text"])


@pytest.mark.parametrize("version", ["tt01-2018", "tt03-2025"])
def test_received_and_refusal_wording_fit_every_channel_and_every_reason(version) -> None:
    kinds = load_templates(version)["kinds"]
    received, rejected = kinds["RECEIVED"]["text"], kinds["REJECTED"]["text"]
    # The same text goes out by OA and ZNS (SMS has its own short text), and the
    # link only opens the OA chat in Zalo.
    assert "Zalo OA này" not in received and "hoặc bấm" not in received
    assert "Zalo" in received and "mã hồ sơ" in received and received.endswith("{link_tra_cuu}")
    # A refusal may be final (not this agency's competence): no promise of refiling.
    assert "nộp lại" not in rejected and "hoàn thiện" not in rejected
    assert "{ly_do}" in rejected and "{noi_tra}" in rejected


def test_the_agency_not_the_dossier_asks_for_the_extension() -> None:
    text = load_templates("tt03-2025")["kinds"]["APOLOGY_RESCHEDULED"]["text"]
    [sentence] = [s for s in text.split(". ") if "gia hạn" in s]
    assert sentence.startswith("{noi_tra} ") and "{ngay_hen_moi}" in sentence
    assert "hồ sơ" not in sentence
    assert "{ngay_hen_cu}" in text and "{ly_do}" in text


def test_template_data_values_are_strings_for_zns() -> None:
    data = notice(6)["template_data"]
    assert data and all(isinstance(v, str) for v in data.values())
