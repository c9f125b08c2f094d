"""The demo's day: what a citizen reads in it must make sense for their procedure."""

from __future__ import annotations

from bridge.samples import DELAY_NOTES, PROCEDURES, SUPPLEMENT_NOTES, DayPlan, day_of_changes


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
