"""Builders of Debezium change events for the reference `dossiers` table."""

from __future__ import annotations

import itertools
import json
from typing import Any, TypeVar

T = TypeVar("T")
_lsn = itertools.count(30_000_000, 128)

BASE_ROW: dict[str, Any] = {
    "id": 1, "code": "000.00.23.H39-240612-0001", "procedure_code": "1.004227",
    "procedure_name": "Cấp giấy chứng nhận quyền sử dụng đất lần đầu",
    "agency_name": "Chi nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc",
    "applicant_name": "Nguyễn Văn An", "applicant_phone": "0909 123 456", "status": 2,
    "received_at": "2024-06-12T01:30:00Z", "due_at": "2024-06-20T09:00:00Z", "finished_at": None,
    "fee_amount": "1250000.00", "note": None, "updated_at": "2024-06-12T01:30:00Z",
}


def row(**changes: Any) -> dict[str, Any]:
    return {**BASE_ROW, **changes}


def event(op: str, after: dict[str, Any] | None = None, before: dict[str, Any] | None = None,
          *, lsn: int | None = None, snapshot: str = "false", ts_ms: int = 1718155800000,
          tx_id: int = 900) -> dict[str, Any]:
    return {
        "before": before, "after": after, "op": op, "ts_ms": ts_ms + 25,
        "source": {"version": "3.7.0.Final", "connector": "postgresql", "name": "onestop",
                   "ts_ms": ts_ms, "snapshot": snapshot, "db": "onestop", "schema": "public",
                   "table": "dossiers", "txId": tx_id, "lsn": next(_lsn) if lsn is None else lsn},
    }


def line(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False)


def present(value: T | None) -> T:
    """`value`, which the test needs to be there (a decoded change, a saved token, a failure)."""
    assert value is not None
    return value
