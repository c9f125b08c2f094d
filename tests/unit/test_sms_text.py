"""What a notice says by SMS and how many parts a gateway bills for it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bridge.model import KINDS, Notification
from bridge.pipeline import Pipeline
from bridge.samples import debezium_day
from bridge.settings import Settings, TemplatesSettings
from bridge.templates import _check_placeholders, load_templates
from bridge.templates.sms import sms_parts, sms_text
from bridge.transitions import MemoryStateStore
from events import event, present, row

VERSIONS = ["tt01-2018", "tt03-2025"]


@pytest.mark.parametrize("text, parts", [
    ("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("{" * 80, 1), ("{" * 81, 2),                     # GSM extension characters take two
    ("ạ" * 70, 1), ("ạ" * 71, 2), ("ạ" * 134, 2), ("ạ" * 135, 3),
    ("a" * 69 + "🙂", 2),                              # outside the BMP: two UCS-2 units
    ("Hồ sơ đã có kết quả.", 1),
])
def test_parts_are_counted_as_gateways_bill_them(text: str, parts: int) -> None:
    assert sms_parts(text) == parts


def notices(version: str) -> list[Notification]:
    """Every notice of the demo's working day (80 dossiers, realistic names and reasons)."""
    pipeline = Pipeline(Settings(templates=TemplatesSettings(version=version)))
    store = MemoryStateStore()
    out: list[Notification] = []
    for value in debezium_day():
        out.extend(pipeline.notify(present(pipeline.decode(json.dumps(value))), store))
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_an_sms_costs_about_half_the_parts_of_the_full_notice(version: str) -> None:
    """Gateways bill every part: the full notices took 4.8 parts on average, the SMS 1.9."""
    sent = notices(version)
    assert {n.kind for n in sent} >= {"RECEIVED", "RESULT_READY", "SUPPLEMENT_REQUESTED"}
    full = sum(sms_parts(n.text) for n in sent)
    short = sum(sms_parts(sms_text(n)) for n in sent)
    assert short / len(sent) < 2 and short < 0.45 * full
    # The commonest notices fit one SMS.
    for kind in ("SUBMITTED", "RECEIVED", "RESULT_RETURNED"):
        assert {sms_parts(sms_text(n)) for n in sent if n.kind == kind} == {1}
    for n in sent:
        text = sms_text(n)
        assert n.dossier_code in text and "zalo.me" not in text and "{" not in text


@pytest.mark.parametrize("version", VERSIONS)
def test_the_sms_keeps_what_the_citizen_must_know(version: str) -> None:
    must = {"RECEIVED": "Hẹn trả: {ngay_hen_tra}.",
            "RESULT_READY": "nhận tại {noi_tra}, mang giấy hẹn, giấy tờ tùy thân; nhận thay cần "
                            "giấy ủy quyền.",
            "SUPPLEMENT_REQUESTED": "cần bổ sung: {ly_do}. Đề nghị Ông/Bà bổ sung tại {noi_tra} "
                                    "hoặc trên Cổng Dịch vụ công. Ngày hẹn trả sẽ được tính lại.",
            "FEE_REQUESTED": "chờ Ông/Bà thực hiện nghĩa vụ tài chính, số tiền {so_tien}, tại",
            "APOLOGY_RESCHEDULED": "theo hẹn ngày {ngay_hen_cu}. {noi_tra} xin lỗi Ông/Bà"}
    seen = set()
    for n in notices(version):
        if n.kind in must:
            assert must[n.kind].format(**n.template_data) in sms_text(n)
            seen.add(n.kind)
    assert seen == set(must)


def test_a_reason_stored_with_its_full_stop_ends_the_sentence_once() -> None:
    """Parameters stored by an older release kept the reason's own full stop."""
    pipeline = Pipeline(Settings())
    [n] = pipeline.notify(present(pipeline.decode(json.dumps(event(
        "c", row(status=5, note="Thiếu bản sao CCCD"))))), MemoryStateStore())
    stored = dataclasses.replace(n, template_data={**n.template_data,
                                                   "ly_do": "Thiếu bản sao CCCD."})
    assert "cần bổ sung: Thiếu bản sao CCCD. Đề nghị" in sms_text(stored)


def test_reasons_typed_with_braces_stay_text() -> None:
    pipeline = Pipeline(Settings())
    [n] = pipeline.notify(present(pipeline.decode(json.dumps(event(
        "c", row(status=5, note="{ma_ho_so} {0} 100%"))))), MemoryStateStore())
    assert "cần bổ sung: {ma_ho_so} {0} 100%." in sms_text(n)


def test_without_its_parameters_the_sms_is_the_notice_less_the_zalo_link() -> None:
    """Notices admitted by an older release, or with a set this one does not know."""
    pipeline = Pipeline(Settings())
    [n] = pipeline.notify(present(pipeline.decode(json.dumps(event("c", row(status=2))))),
                          MemoryStateStore())
    assert "zalo.me/" in n.text
    for other in (dataclasses.replace(n, template_data={}),
                  dataclasses.replace(n, template_version="retired-2016")):
        text = sms_text(other)
        assert text.startswith("Kính gửi") and "zalo.me/" not in text and "Để tra cứu" not in text


@pytest.mark.parametrize("version", VERSIONS)
def test_every_kind_has_an_sms_text_filled_from_stored_parameters(version: str) -> None:
    kinds = load_templates(version)["kinds"]
    assert all(kinds[k]["sms"] and "{ma_ho_so}" in kinds[k]["sms"] for k in KINDS)
    broken = json.loads(json.dumps(load_templates(version)))
    broken["kinds"]["RECEIVED"]["sms"] += " {ten_thu_tuc} {ly_do}"  # ly_do is not stored for it
    with pytest.raises(ValueError, match=r"RECEIVED: its sms text uses \['ly_do'\]"):
        _check_placeholders(broken)
