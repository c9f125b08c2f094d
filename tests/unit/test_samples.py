"""The demo's day: what a citizen reads in it must make sense for their procedure."""

from __future__ import annotations

import io
import json
import re
from datetime import date, datetime

import pytest

from bridge.model import Notification
from bridge.phone import normalise_phone
from bridge.pipeline import Pipeline
from bridge.render import render_lines
from bridge.samples import (DELAY_NOTES, PROCEDURES, STOP_NOTES, SUPPLEMENT_NOTES, DayPlan,
                            add_working_days, day_of_changes, debezium_day, is_working_day)
from bridge.settings import Settings, TemplatesSettings
from bridge.templates import UNKNOWN_REASON

VN_DATE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")
# Mobile prefixes in use in Viet Nam (the two digits after the leading 0), written out here
# rather than imported, so that the test does not merely repeat the generator.
ASSIGNED_PREFIXES = {*map(str, range(32, 40)), "52", "55", "56", "58", "59", "70",
                     *map(str, range(76, 80)), *map(str, range(81, 90)),
                     *map(str, range(90, 95)), *map(str, range(96, 100))}


def rendered_day(seed: int, version: str = "tt01-2018") -> list[Notification]:
    pipeline = Pipeline(Settings(templates=TemplatesSettings(version=version)))
    lines = [json.dumps(document) for document in debezium_day(DayPlan(seed=seed))]
    errors = io.StringIO()
    notices = list(render_lines(pipeline, lines, errors))
    assert errors.getvalue() == ""
    return [n for n in notices if n is not None]


def test_every_procedure_has_its_own_requests_and_delay_reasons() -> None:
    codes = {code for code, *_ in PROCEDURES}
    assert set(SUPPLEMENT_NOTES) == codes
    assert set(DELAY_NOTES) == codes


def test_a_dossier_is_asked_only_for_what_its_procedure_needs() -> None:
    asked: dict[str, set[str]] = {}
    delayed: dict[str, set[str]] = {}
    for seed in range(20):
        for change in day_of_changes(DayPlan(seed=seed)):
            row, before = change.row, change.previous or {}
            code = row["procedure_code"]
            if row["status"] == 5 and row["note"]:
                assert row["note"] in SUPPLEMENT_NOTES[code], (row["procedure_name"], row["note"])
                asked.setdefault(code, set()).add(row["note"])
            if before.get("due_at") and row["due_at"] != before["due_at"]:  # an apology
                assert row["note"] in DELAY_NOTES[code], (row["procedure_name"], row["note"])
                delayed.setdefault(code, set()).add(row["note"])
    # Twenty days reach every procedure's requests, so the assertions above were exercised.
    assert set(asked) == set(SUPPLEMENT_NOTES)
    assert sum(map(len, asked.values())) > len(SUPPLEMENT_NOTES)
    assert delayed



def test_only_a_procedure_with_a_fee_asks_for_one() -> None:
    fees = {code: fee for code, _name, _days, fee, _agency in PROCEDURES}
    asked = set()
    for seed in range(20):
        for change in day_of_changes(DayPlan(seed=seed)):
            row = change.row
            if row["status"] == 6:  # financial obligation
                assert fees[row["procedure_code"]] is not None, row["procedure_name"]
                assert row["fee_amount"] == fees[row["procedure_code"]]
                asked.add(row["procedure_code"])
    assert asked == {code for code, fee in fees.items() if fee is not None}


@pytest.mark.parametrize("day, working", [
    (date(2026, 11, 27), True),    # the demo's day, a Friday
    (date(2026, 11, 28), False),   # Saturday
    (date(2026, 11, 29), False),   # Sunday
    (date(2027, 1, 1), False),     # Tết Dương lịch
    (date(2027, 2, 5), False),     # Lunar New Year's Eve (Tết 2027 is on Saturday 6/2)
    (date(2027, 2, 10), False),    # in lieu of Tết days on the weekend (nghỉ bù)
    (date(2027, 2, 12), True),
    (date(2027, 4, 16), False),    # Giỗ Tổ Hùng Vương, 10/3 lunar
    (date(2027, 4, 30), False),
    (date(2027, 5, 3), False),     # in lieu of 1/5, a Saturday
    (date(2026, 9, 2), False),
    (date(2026, 9, 3), False),     # the day next to National Day
    (date(2028, 1, 3), False),     # in lieu of 1/1/2028, a Saturday
])
def test_the_calendar_knows_weekends_and_public_holidays(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_processing_time_is_counted_in_working_days() -> None:
    friday = datetime(2026, 11, 27, 9, 0)
    assert add_working_days(friday, 1) == datetime(2026, 11, 30, 9, 0)  # Monday
    assert add_working_days(friday, 5) == datetime(2026, 12, 4, 9, 0)
    # 31/12/2026 is a Thursday; 1/1 is a holiday, then a weekend.
    assert add_working_days(datetime(2026, 12, 31, 16, 0), 1) == datetime(2027, 1, 4, 16, 0)


def test_every_date_a_citizen_reads_is_a_working_day() -> None:
    apologies = 0
    for seed in range(10):
        for n in rendered_day(seed):
            for dd, mm, yyyy in VN_DATE.findall(n.text):
                day = date(int(yyyy), int(mm), int(dd))
                assert is_working_day(day), (n.kind, day.strftime("%A %d/%m/%Y"), n.text)
            if n.kind == "APOLOGY_RESCHEDULED":
                old, new = (datetime.strptime(n.template_data[key], "%d/%m/%Y")
                            for key in ("ngay_hen_cu", "ngay_hen_moi"))
                assert new > old, n.text
                apologies += 1
    assert apologies  # the apology path was exercised


def test_a_stopped_dossier_says_why() -> None:
    stopped = 0
    for seed in range(20):
        for change in day_of_changes(DayPlan(seed=seed)):
            row = change.row
            if row["status"] == 8:
                assert row["note"] in STOP_NOTES[row["procedure_code"]], row["procedure_name"]
                stopped += 1
    assert stopped
    notices = [n for seed in range(20) for n in rendered_day(seed, "tt03-2025")
               if n.kind == "STOPPED"]
    assert notices
    for n in notices:
        assert UNKNOWN_REASON not in n.text and "chưa được ghi rõ" not in n.text
        assert n.template_data["ly_do"] in {note for notes in STOP_NOTES.values() for note in notes}


def test_phone_numbers_use_assigned_mobile_prefixes() -> None:
    seen = 0
    for seed in range(20):
        for change in day_of_changes(DayPlan(seed=seed)):
            raw = change.row["applicant_phone"]
            if raw is None:
                continue
            phone = normalise_phone(raw)
            assert phone is not None, raw
            assert phone[2:4] in ASSIGNED_PREFIXES, raw
            seen += 1
    assert seen
