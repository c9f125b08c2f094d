"""A realistic day at a one-stop centre, as row changes of the reference `dossiers` table.

Used by `make demo`, by the render sample file and by the benchmarks. Volumes
follow domain.md §6 (a commune centre receives 60–80 dossiers a day; each dossier
sends 3–6 notices); every dossier walks a path of national statuses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
AGENCY_CODE = "000.00.23.H39"

# (procedure code, name, legal working days, fee in VND or None, receiving agency). Birth and
# marriage registration are free for citizens living in Viet Nam (Luật Hộ tịch 2014, Điều 11).
PROCEDURES = [
    ("1.001193", "Đăng ký khai sinh", 1, None, "UBND xã Long Trạch"),
    ("1.000894", "Đăng ký kết hôn", 3, None, "UBND xã Long Trạch"),
    ("1.003583", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", 1, Decimal("2000"),
     "UBND xã Long Trạch"),
    ("1.004227", "Cấp giấy chứng nhận quyền sử dụng đất lần đầu", 30, Decimal("1250000"),
     "Chi nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc"),
    ("1.001757", "Đăng ký biến động quyền sử dụng đất do chuyển nhượng", 10, Decimal("550000"),
     "Chi nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc"),
    ("2.000635", "Cấp giấy phép xây dựng nhà ở riêng lẻ", 15, Decimal("75000"),
     "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
    ("1.001612", "Đăng ký thành lập hộ kinh doanh", 3, Decimal("100000"),
     "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
    ("2.000908", "Cấp phiếu lý lịch tư pháp", 10, Decimal("200000"),
     "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
    ("1.002804", "Cấp đổi giấy phép lái xe", 5, Decimal("135000"),
     "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
    ("1.004946", "Đăng ký thay đổi nội dung đăng ký doanh nghiệp", 3, Decimal("50000"),
     "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
]
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Phan", "Trương", "Đặng", "Bùi"]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Hoàng", "Thanh", "Quốc", "Thu"]
GIVEN = ["An", "Bình", "Cường", "Dung", "Hạnh", "Khoa", "Lan", "Mai", "Nam", "Phúc", "Quyên",
         "Sơn", "Tâm", "Uyên", "Vy", "Yến"]
# What a desk asks for, or why a deadline slips, depends on the procedure: a birth
# registration is not held up by a land survey. Three and two per procedure, so every
# procedure draws from the seeded generator alike.
SUPPLEMENT_NOTES: dict[str, tuple[str, str, str]] = {
    "1.001193": ("Bổ sung bản chính Giấy chứng sinh của trẻ",
                 "Bổ sung văn bản ủy quyền có chứng thực của cha, mẹ trẻ",
                 "Tờ khai đăng ký khai sinh chưa ghi quê quán của cha, mẹ trẻ"),
    "1.000894": ("Bổ sung Giấy xác nhận tình trạng hôn nhân của bên nữ",
                 "Bổ sung Giấy xác nhận tình trạng hôn nhân của bên nam",
                 "Tờ khai đăng ký kết hôn chưa có đủ chữ ký của hai bên"),
    "1.003583": ("Xuất trình bản chính của giấy tờ cần chứng thực",
                 "Bổ sung bản dịch có chứng thực của giấy tờ bằng tiếng nước ngoài",
                 "Bản chụp chưa rõ nội dung, đề nghị nộp lại bản chụp rõ nét"),
    "1.004227": ("Bổ sung bản vẽ sơ đồ thửa đất có xác nhận của UBND cấp xã",
                 "Bổ sung giấy tờ về nguồn gốc sử dụng đất (bản sao có chứng thực)",
                 "Đơn đăng ký chưa có chữ ký của các thành viên cùng sử dụng đất"),
    "1.001757": ("Hợp đồng chuyển nhượng chưa có chữ ký của đồng sở hữu",
                 "Bổ sung bản gốc Giấy chứng nhận quyền sử dụng đất đã cấp",
                 "Tờ khai lệ phí trước bạ chưa có chữ ký của bên nhận chuyển nhượng"),
    "2.000635": ("Bổ sung bản vẽ mặt bằng, mặt cắt, mặt đứng của công trình",
                 "Bổ sung bản sao giấy tờ hợp pháp về quyền sử dụng đất",
                 "Đơn đề nghị chưa có chữ ký của đồng sở hữu"),
    "1.001612": ("Bổ sung bản sao hợp đồng thuê địa điểm kinh doanh",
                 "Bổ sung biên bản họp thành viên hộ gia đình về việc thành lập hộ kinh doanh",
                 "Giấy đề nghị chưa ghi ngành, nghề kinh doanh"),
    "2.000908": ("Bổ sung văn bản ủy quyền có chứng thực",
                 "Bổ sung bản sao Căn cước công dân có chứng thực của người ủy quyền",
                 "Tờ khai chưa kê khai nơi cư trú trước đây"),
    "1.002804": ("Bổ sung Giấy khám sức khỏe của người lái xe",
                 "Xuất trình bản chính giấy phép lái xe cần đổi",
                 "Ảnh chân dung chưa đúng quy cách"),
    "1.004946": ("Bổ sung nghị quyết của Hội đồng thành viên về việc thay đổi nội dung đăng ký",
                 "Bổ sung văn bản ủy quyền cho người nộp hồ sơ",
                 "Thông báo thay đổi chưa có chữ ký của người đại diện theo pháp luật"),
}
DELAY_NOTES: dict[str, tuple[str, str]] = {
    "1.001193": ("Cần xác minh thông tin trên Giấy chứng sinh với cơ sở y tế",
                 "Cần xác minh thông tin cư trú của người mẹ"),
    "1.000894": ("Cần xác minh tình trạng hôn nhân tại nơi cư trú trước đây",
                 "Cần xác minh thêm thông tin nhân thân của hai bên"),
    "1.003583": ("Số lượng bản sao lớn, cần thêm thời gian đối chiếu",
                 "Cần xác minh giấy tờ do cơ quan nước ngoài cấp"),
    "1.004227": ("Hồ sơ phải thẩm tra, xác minh thực địa",
                 "Cần lấy ý kiến khu dân cư về nguồn gốc sử dụng đất"),
    "1.001757": ("Cần lấy ý kiến của cơ quan thuế về nghĩa vụ tài chính",
                 "Hồ sơ phải thẩm tra, xác minh thực địa"),
    "2.000635": ("Cần lấy ý kiến của cơ quan chuyên môn về xây dựng",
                 "Hồ sơ phải thẩm tra, xác minh thực địa"),
    "1.001612": ("Cần xác minh địa điểm kinh doanh",
                 "Tên hộ kinh doanh trùng với tên đã đăng ký, cần kiểm tra lại"),
    "2.000908": ("Cần tra cứu thông tin lý lịch tư pháp tại nơi cư trú trước đây",
                 "Cần xác minh thông tin án tích với cơ quan Công an"),
    "1.002804": ("Cần xác minh giấy phép lái xe với cơ quan đã cấp",
                 "Cần đối chiếu dữ liệu giấy phép lái xe với Cục Đường bộ Việt Nam"),
    "1.004946": ("Cần lấy ý kiến của cơ quan thuế",
                 "Cần xác minh thông tin người đại diện theo pháp luật"),
}
# Why an agency stops working on a dossier (status 8, Mẫu 05 of TT 03/2025): something
# outside the dossier blocks it. Two per procedure, like the delay reasons.
STOP_NOTES: dict[str, tuple[str, str]] = {
    "1.001193": ("Trẻ đã được đăng ký khai sinh trước đó theo Cơ sở dữ liệu hộ tịch điện tử",
                 "Việc xác định cha, mẹ của trẻ đang được Tòa án giải quyết"),
    "1.000894": ("Một bên đang có vợ hoặc chồng theo Cơ sở dữ liệu hộ tịch điện tử",
                 "Một bên chưa đủ tuổi kết hôn theo quy định của pháp luật"),
    "1.003583": ("Giấy tờ cần chứng thực có dấu hiệu bị tẩy xóa, sửa chữa nội dung",
                 "Giấy tờ do cơ quan nước ngoài cấp chưa được hợp pháp hóa lãnh sự"),
    "1.004227": ("Thửa đất đang có tranh chấp và đã được Tòa án nhân dân thụ lý",
                 "Thửa đất nằm trong khu vực đã có thông báo thu hồi đất"),
    "1.001757": ("Quyền sử dụng đất đang bị kê biên để bảo đảm thi hành án",
                 "Tòa án có văn bản yêu cầu tạm dừng đăng ký biến động thửa đất"),
    "2.000635": ("Khu đất nằm trong khu vực đã có thông báo thu hồi đất để thực hiện dự án",
                 "Thửa đất đang có tranh chấp và đã được Tòa án nhân dân thụ lý"),
    "1.001612": ("Chủ hộ kinh doanh đang bị cấm kinh doanh theo bản án của Tòa án",
                 "Địa điểm kinh doanh nằm trong khu vực đã có thông báo thu hồi đất"),
    "2.000908": ("Người đề nghị cấp phiếu đang bị truy cứu trách nhiệm hình sự",
                 "Thông tin án tích đang có khiếu nại, chờ kết luận của cơ quan có thẩm quyền"),
    "1.002804": ("Giấy phép lái xe cần đổi đang trong thời gian bị tước quyền sử dụng",
                 "Giấy phép lái xe cần đổi không có trong hệ thống thông tin giấy phép lái xe"),
    "1.004946": ("Doanh nghiệp đang bị cưỡng chế nợ thuế theo thông báo của cơ quan thuế",
                 "Tòa án có văn bản yêu cầu tạm dừng thay đổi nội dung đăng ký doanh nghiệp"),
}
REJECT_NOTES = ["Thủ tục không thuộc thẩm quyền giải quyết của cơ quan tiếp nhận"]
# The mobile prefixes in use since the 2018 renumbering (the two digits after the leading 0).
# 095 (the former S-Fone) is not one, nor are fixed-line area codes such as 0274.
MOBILE_PREFIXES = ("32", "33", "34", "35", "36", "37", "38", "39",
                   "52", "55", "56", "58", "59",
                   "70", "76", "77", "78", "79",
                   "81", "82", "83", "84", "85", "86", "87", "88", "89",
                   "90", "91", "92", "93", "94", "96", "97", "98", "99")
PHONE_STYLES = ("0{n}", "+84 {n}", "84{n}", "0{a} {b} {c}")

# Public holidays on which one-stop desks are closed (Bộ luật Lao động 2019, Điều 112), kept
# simple: the fixed-date ones — 1/1, 30/4, 1/5, 2/9 and the day next to 2/9 (3/9, or 1/9 when
# 2/9 is a Tuesday, so the break joins the weekend; the Government fixes it each year) — plus
# a table of the lunar ones for the years the demo reaches: Tết is taken as New Year's Eve and
# the first four days of the lunar year (the five statutory days; the Government fixes the
# exact ones each year), and Giỗ Tổ Hùng Vương is the 10th of the third lunar month. A
# holiday on a Saturday or Sunday moves to the next working day (nghỉ bù, Điều 112 khoản 3).
LUNAR_NEW_YEAR = {2026: date(2026, 2, 17), 2027: date(2027, 2, 6), 2028: date(2028, 1, 26)}
HUNG_KINGS = {2026: date(2026, 4, 26), 2027: date(2027, 4, 16), 2028: date(2028, 4, 4)}

# Status paths and how often each happens (weights): most dossiers go straight through.
PATHS: list[tuple[int, tuple[int, ...]]] = [
    (55, (2, 4, 9, 10)),
    (12, (2, 5, 4, 9, 10)),
    (8, (2, 4, "apology", 9, 10)),  # type: ignore[list-item]
    (8, (2, 6, 4, 9, 10)),
    (6, (1, 2, 4, 9, 10)),
    (4, (3,)),
    (3, (2, 7)),
    (2, (2, 4, 8)),
    (2, (2, 5, 4, 5, 4, 9)),
]


@cache
def _holidays(year: int) -> frozenset[date]:
    national_day = date(year, 9, 2)
    days = {date(year, 1, 1), date(year, 4, 30), date(year, 5, 1), national_day,
            national_day + timedelta(days=-1 if national_day.weekday() == 1 else 1)}
    if year in LUNAR_NEW_YEAR:  # Tết falls between 21/1 and 20/2: its eve is in the same year
        days.update(LUNAR_NEW_YEAR[year] + timedelta(days=n) for n in range(-1, 4))
    if year in HUNG_KINGS:
        days.add(HUNG_KINGS[year])
    for holiday in sorted(days):  # in date order, so two weekend days of Tết take two days
        if holiday.weekday() >= 5:
            substitute = holiday + timedelta(days=1)
            while substitute.weekday() >= 5 or substitute in days:
                substitute += timedelta(days=1)
            days.add(substitute)
    return frozenset(days)


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a public holiday (the rules are above LUNAR_NEW_YEAR)."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """`start` moved `days` working days later (at least one), keeping its time of day:
    processing time is counted in working days, so the date a citizen is given is one."""
    moment = start
    for _ in range(max(days, 1)):
        moment += timedelta(days=1)
        while not is_working_day(moment.date()):
            moment += timedelta(days=1)
    return moment


@dataclass
class RowChange:
    """One write to the dossiers table: `sql_op` insert or update, with the full new row."""

    op: str  # "c" | "u"
    row: dict[str, Any]
    previous: dict[str, Any] | None
    at: datetime


@dataclass
class DayPlan:
    seed: int = 2019
    dossiers: int = 80
    day: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 7, 30, tzinfo=VN))
    phones_without_zalo: float = 0.15
    missing_phone: float = 0.03


def _phone(rng: random.Random, plan: DayPlan) -> str | None:
    if rng.random() < plan.missing_phone:
        return None
    number = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**7):07d}"
    style = rng.choice(PHONE_STYLES)
    return style.format(n=number, a=number[:3], b=number[3:6], c=number[6:])


def _weighted_path(rng: random.Random) -> tuple[Any, ...]:
    weights = [w for w, _ in PATHS]
    return rng.choices([p for _, p in PATHS], weights=weights)[0]


def day_of_changes(plan: DayPlan | None = None) -> Iterator[RowChange]:
    """Every insert and update of one day, in commit order."""
    plan = plan or DayPlan()
    rng = random.Random(plan.seed)
    timeline: list[RowChange] = []
    for n in range(1, plan.dossiers + 1):
        timeline.extend(_dossier_story(rng, plan, n))
    timeline.sort(key=lambda change: change.at)
    yield from timeline


def _dossier_story(rng: random.Random, plan: DayPlan, n: int) -> list[RowChange]:
    code_, name, days, fee, agency = rng.choice(PROCEDURES)
    start = plan.day + timedelta(minutes=rng.randrange(0, 9 * 60))
    row: dict[str, Any] = {
        "id": n, "code": f"{AGENCY_CODE}-{plan.day:%y%m%d}-{n:04d}", "procedure_code": code_,
        "procedure_name": name, "agency_name": agency,
        "applicant_name": f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}",
        "applicant_phone": _phone(rng, plan), "status": None, "received_at": None,
        "due_at": None, "finished_at": None, "fee_amount": None, "note": None,
    }
    changes: list[RowChange] = []
    at = start
    previous: dict[str, Any] | None = None
    for step in _weighted_path(rng):
        if step == 6 and fee is None:  # nothing to pay: the dossier goes straight on
            continue
        row = dict(row)
        _apply_step(rng, row, step, at, days, fee)
        row["updated_at"] = at
        changes.append(RowChange("c" if previous is None else "u", row, previous, at))
        previous = row
        at = at + timedelta(minutes=rng.randrange(3, 50))
    return changes


def _apply_step(rng: random.Random, row: dict[str, Any], step: Any, at: datetime, days: int,
                fee: Decimal | None) -> None:
    if step == "apology":  # the new date: some working days after the old one
        row["due_at"] = add_working_days(row["due_at"], rng.choice((3, 5, 7)))
        row["note"] = rng.choice(DELAY_NOTES[row["procedure_code"]])
        return
    row["status"] = step
    if step == 2:
        row["received_at"] = at
        row["due_at"] = add_working_days(at, days).replace(hour=16, minute=0, second=0,
                                                           microsecond=0)
        row["note"] = None
    elif step == 3:
        row["note"] = rng.choice(REJECT_NOTES)
    elif step == 5:
        row["note"] = rng.choice(SUPPLEMENT_NOTES[row["procedure_code"]])
    elif step == 6:
        row["fee_amount"] = fee
    elif step == 8:
        row["note"] = rng.choice(STOP_NOTES[row["procedure_code"]])
    elif step in (9, 10):
        row["finished_at"] = at


def debezium_value(change: RowChange, lsn: int, tx_id: int) -> dict[str, Any]:
    """The change as Debezium's PostgreSQL connector writes it without the schema envelope."""
    def encode(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, datetime):
                value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif isinstance(value, Decimal):
                value = str(value)
            out[key] = value
        return out

    ts_ms = int(change.at.timestamp() * 1000)
    return {
        "before": None, "after": encode(change.row), "op": change.op, "ts_ms": ts_ms + 40,
        "source": {"version": "3.7.0.Final", "connector": "postgresql", "name": "onestop",
                   "ts_ms": ts_ms, "snapshot": "false", "db": "onestop", "schema": "public",
                   "table": "dossiers", "txId": tx_id, "lsn": lsn, "xmin": None},
    }


def debezium_day(plan: DayPlan | None = None) -> Iterator[dict[str, Any]]:
    for n, change in enumerate(day_of_changes(plan)):
        yield debezium_value(change, lsn=24_000_000 + 512 * n, tx_id=700 + n)
