"""Lookup against the one-stop database itself (`oa.lookup_dsn`): a real PostgreSQL, a
least-privilege read-only role, the reference schema and a vendor schema mapped by
`[source.columns]` / `[source.status_map]`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from citizen_harness import CODE, PHONE, Bridge, MakeBridge
from sqlalchemy import text

from bridge.citizen.dossiers import DatabaseDossiers

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
LOOKUP_COLUMNS = ("code, procedure_name, agency_name, applicant_phone, status, received_at, "
                  "due_at, finished_at, fee_amount, note")


def one_stop_db(pg: Any, rows: list[tuple[Any, ...]], *, ddl: str | None = None,
                columns: str = LOOKUP_COLUMNS, table: str = "dossiers") -> str:
    """A fresh database with the dossiers and a role that may only read the lookup columns."""
    name, role = f"onestop_{uuid.uuid4().hex[:8]}", f"lookup_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    admin = pg.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")
    admin.close()
    conn = pg.connect(dbname=name)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(ddl or (ROOT / "schemas" / "reference.sql").read_text())
        for values in rows:
            cur.execute(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(values))})", values)
        cur.execute(f"GRANT SELECT ({columns}) ON {table} TO {role}")
    conn.close()
    return f"postgresql://{role}@127.0.0.1:{pg.port}/{name}"  # as deploy/env writes it


def reference_row(id_: int, code: str, phone: str, status: int, note: str | None = None) -> tuple:
    return (id_, code, "1.001193", "Đăng ký khai sinh", "UBND xã Phước Lý", "Trần Thị Bình",
            phone, status, "2024-06-12T08:30:00+07", "2024-06-14T16:00:00+07", None, None,
            note, "2024-06-12T08:30:00+07")


def ask(oa: Bridge, user: str, words: str, count: int = 1) -> list[dict]:
    seq = oa.last_seq()
    oa.say(user, words)
    return oa.replies(user, count, after=seq)


def test_lookup_reads_the_one_stop_database_read_only(pg: Any, make_bridge: MakeBridge) -> None:
    dsn = one_stop_db(pg, [reference_row(1, CODE, "+84 909.123.456", 5, "Bản sao CCCD của mẹ"),
                           reference_row(2, "000.00.23.H39-240612-0002", "0909-123-456", 10),
                           reference_row(3, "000.00.23.H39-240612-0003", "0912 000 999", 2)])
    oa = make_bridge(lookup_dsn=dsn)
    assert isinstance(oa.citizen.dossiers, DatabaseDossiers)
    seq = oa.last_seq()
    oa.user_event("follow", "db-1")
    oa.replies("db-1", 2, after=seq)
    got = oa.replies("db-1", 2, after=oa.share("db-1"))
    confirm = "\n".join(m["text"] or "" for m in got)
    assert "1 hồ sơ" in confirm and "Bản sao CCCD của mẹ" in confirm
    assert "240612-0002" not in confirm                      # finished: not confirmed again
    details = ask(oa, "db-1", "000.00.23.h39-240612-0001")[0]["text"]
    assert "Cần bổ sung giấy tờ" in details and "Nội dung cần bổ sung: Bản sao CCCD của mẹ" in details
    assert "Trần Thị Bình" not in details
    seq = oa.last_seq()
    oa.user_event("follow", "db-2")
    oa.replies("db-2", 2, after=seq)
    assert "4 chữ số cuối" in ask(oa, "db-2", "000.00.23.H39-240612-0003")[0]["text"]
    assert "Đã được tiếp nhận" in ask(oa, "db-2", "0999")[0]["text"]
    ask(oa, "db-2", "000.00.23.H39-240612-0003' OR '1'='1'; DROP TABLE dossiers; --")
    with oa.citizen.dossiers.engine.connect() as conn:          # the role cannot write
        with pytest.raises(Exception, match="read-only|permission denied"):
            conn.execute(text("UPDATE dossiers SET status = 10"))
    assert len(oa.citizen.dossiers.by_codes([CODE, "000.00.23.H39-240612-0003"])) == 2


VENDOR_DDL = """CREATE TABLE ho_so (
  ma_ho_so TEXT PRIMARY KEY, ten_thu_tuc TEXT, noi_tra TEXT, sdt TEXT, trang_thai TEXT,
  ngay_nhan TIMESTAMPTZ, ngay_hen TIMESTAMPTZ, ngay_xong TIMESTAMPTZ, le_phi NUMERIC(14,2),
  ghi_chu TEXT, chu_ho_so TEXT)"""


def test_a_vendor_schema_is_read_through_the_column_and_status_maps(
        pg: Any, make_bridge: MakeBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = one_stop_db(pg, [(CODE, "Cấp giấy phép xây dựng", "UBND xã Long Hậu", "0909123456",
                            "CHO_NOP_PHI", "2024-06-12T08:00:00+07", "2024-06-27T16:00:00+07",
                            None, "75000", None, "Lê Văn Cường")],
                      ddl=VENDOR_DDL, table="ho_so",
                      columns="ma_ho_so, ten_thu_tuc, noi_tra, sdt, trang_thai, ngay_nhan, "
                              "ngay_hen, ngay_xong, le_phi, ghi_chu")
    for key, value in {"TABLES": "public.ho_so",
                       "COLUMNS": '{"code": "ma_ho_so", "procedure_name": "ten_thu_tuc", '
                                  '"agency_name": "noi_tra", "applicant_phone": "sdt", '
                                  '"status": "trang_thai", "received_at": "ngay_nhan", '
                                  '"due_at": "ngay_hen", "finished_at": "ngay_xong", '
                                  '"fee_amount": "le_phi", "note": "ghi_chu"}',
                       "STATUS_MAP": '{"CHO_NOP_PHI": 6, "DA_TIEP_NHAN": 2}'}.items():
        monkeypatch.setenv(f"ONESTOP_SOURCE__{key}", value)
    oa = make_bridge(lookup_dsn=dsn)
    seq = oa.last_seq()
    oa.user_event("follow", "v-1")
    oa.replies("v-1", 2, after=seq)
    confirm = "\n".join(m["text"] or "" for m in oa.replies("v-1", 2, after=oa.share("v-1")))
    assert "Chờ thực hiện nghĩa vụ tài chính" in confirm and "75.000 đồng" in confirm
    assert "27/06/2024" in confirm and "Lê Văn Cường" not in confirm
