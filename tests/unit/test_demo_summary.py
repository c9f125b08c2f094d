"""The demo's closing summary tells unsent notices apart from unreadable changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bridge.demo_show import print_summary
from bridge.ledger.tables import metadata, notifications
from bridge.samples import DayPlan


def ledger(path: Path, rows: list[dict[str, object]]) -> Path:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    base = {"event_id": "e", "dossier_key": "k", "dossier_code": "C", "kind": "RECEIVED",
            "text": "t", "template_data": "{}", "template_version": "tt01-2018",
            "channel": None, "price_vnd": None, "error_class": None,
            "created_at_ms": 0, "updated_at_ms": 0}
    with engine.begin() as conn:
        conn.execute(notifications.insert(), [{**base, "idempotency_key": f"{i:032x}", **row}
                                              for i, row in enumerate(rows)])
    engine.dispose()
    return path


def test_a_notice_without_a_phone_is_unsent_for_that_reason_not_an_unreadable_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ledger(tmp_path / "ledger.db", [
        {"status": "sent", "channel": "zns", "price_vnd": 250},
        {"status": "sent", "channel": "zalo_oa", "price_vnd": 0},
        {"status": "dead", "error_class": "RecipientError"},
        {"status": "dead", "error_class": "RecipientError"},
    ])
    print_summary(path, DayPlan(dossiers=3), {"no_recipient": 2, "bad_input": 1})
    line = capsys.readouterr().out.splitlines()[2]
    assert line == ("Hồ sơ: 3; thông báo đã gửi: 2; chưa gửi được: 2 (hồ sơ không có số điện "
                    "thoại di động hợp lệ: 2); thay đổi không đọc được (chuyển vào DLQ): 1")
