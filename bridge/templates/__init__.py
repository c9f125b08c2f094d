"""Citizen-facing Vietnamese notices, kept as data files versioned by legal basis.

`tt01-2018.json` follows the forms of Thông tư 01/2018/TT-VPCP; `tt03-2025.json`
the renamed forms of Thông tư 03/2025/TT-VPCP. Each kind has a text (what an OA
message says), a short `sms` text (bridge/templates/sms.py) and the ZNS template
parameters (string values).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bridge.errors import BadInputError
from bridge.model import Dossier, Unreadable
from bridge.transitions import known

UNKNOWN_DATE = "chưa xác định"
# Read after "Lý do:" or "Nội dung cần bổ sung:". Not "none was given" (a province says
# that in writing), and not "please contact" again: each of those texts already says where.
UNKNOWN_REASON = "Bộ phận Một cửa sẽ cho biết cụ thể khi Ông/Bà liên hệ"
UNKNOWN_AMOUNT = "theo thông báo của cơ quan giải quyết"
UNKNOWN_PLACE = "Bộ phận Một cửa nơi Ông/Bà nộp hồ sơ"
_DATE_CACHE = 4096
# The portal's status names (design.md §3) are desk language ("Công dân yêu cầu rút
# hồ sơ", "Mới đăng ký"); a citizen reads where their dossier stands.
STATUS_FOR_CITIZENS: dict[int, str] = {
    1: "Đã nộp trực tuyến, đang chờ tiếp nhận", 2: "Đã được tiếp nhận", 3: "Không được tiếp nhận",
    4: "Đang được giải quyết", 5: "Cần bổ sung giấy tờ", 6: "Chờ thực hiện nghĩa vụ tài chính",
    7: "Đã rút theo đề nghị", 8: "Đã dừng xử lý", 9: "Đã có kết quả, chờ nhận",
    10: "Đã trả kết quả",
}


@cache
def load_templates(version: str) -> dict[str, Any]:
    try:
        text = resources.files(__package__).joinpath(f"{version}.json").read_text("utf-8")
    except FileNotFoundError:
        raise BadInputError(f"no template set {version!r}") from None
    data = json.loads(text)
    _check_placeholders(data)
    return data


def _check_placeholders(data: dict[str, Any]) -> None:
    """Fail at load time, not at 3 a.m., on a placeholder the renderer cannot fill."""
    allowed = set(_FIELDS)
    for kind, spec in data["kinds"].items():
        where = f"template {data['version']}/{kind}"
        names = _placeholders(spec["text"], where)
        unknown = (names | set(spec["params"])) - allowed
        if unknown:
            raise ValueError(f"{where} uses unknown fields {unknown}")
        # The SMS text is filled at send time from the stored ZNS parameters (templates/sms.py).
        not_stored = _placeholders(spec["sms"], where) - set(spec["params"])
        if not_stored:
            raise ValueError(f"{where}: its sms text uses {sorted(not_stored)}, "
                             "which are not among its params")


def _placeholders(text: str, where: str) -> set[str]:
    parsed = list(string.Formatter().parse(text))
    if any(spec or conv for _, f, spec, conv in parsed if f):
        raise ValueError(f"{where}: write placeholders as plain {{name}}, "
                         "without format specs or conversions")
    return {f for _, f, _, _ in parsed if f}


def format_date(moment: Any, zone: ZoneInfo) -> str:
    """dd/mm/yyyy in Asia/Ho_Chi_Minh, whatever time zone the event used."""
    if not isinstance(moment, datetime):
        return UNKNOWN_DATE
    local = moment.astimezone(zone)
    return "%02d/%02d/%d" % (local.day, local.month, local.year)  # 5× faster than f"{:02d}"


def group_digits(number: int) -> str:
    """``1250000`` → ``1.250.000``: thousands grouped the Vietnamese way."""
    return f"{number:,}".replace(",", ".")


def format_vnd(amount: Decimal) -> str:
    """``Decimal('1250000.00')`` → ``1.250.000 đồng`` (Vietnamese grouping and comma)."""
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    whole, cents = divmod(abs(rounded), 1)
    sign = "-" if rounded < 0 else ""
    fraction = f",{int(cents * 100):02d}" if cents else ""
    return f"{sign}{group_digits(int(whole))}{fraction} đồng"


def fee_text(amount: Any) -> str:
    """A dossier's fee as a notice states it; without an amount to ask for (none, or 0 and
    below: "please pay 0 đồng" asks for nothing), the agency's own notice is pointed to.

    An amount the event had but the bridge could not read raises BadInputError: the notice
    goes to the DLQ until the setting is fixed, rather than out with no amount.
    """
    if isinstance(amount, Unreadable):
        raise BadInputError(amount.reason)
    if not isinstance(amount, Decimal) or amount.quantize(Decimal("0.01"), ROUND_HALF_UP) <= 0:
        return UNKNOWN_AMOUNT
    return format_vnd(amount)


class Renderer:
    def __init__(self, version: str, zone: ZoneInfo, lookup_url: str, oa_id: str) -> None:
        self.templates = load_templates(version)
        self.version = version
        self.zone = zone
        # The lookup link with the OA filled in, split where the dossier code goes.
        self._link_parts = lookup_url.format(oa_id=oa_id, code="\0").split("\0")
        self._compiled = {kind: _compile(spec) for kind, spec in self.templates["kinds"].items()}
        # A dossier's dates recur in each of its notices; time-zone conversion is the
        # dearest step of rendering, so local dates are remembered (bounded).
        self._dates: dict[Any, str] = {}

    def render(self, kind: str, dossier: Dossier,
               previous_due_at: datetime | None = None) -> tuple[str, dict[str, str]]:
        spec = self.templates["kinds"].get(kind)
        if spec is None:
            raise BadInputError(f"no template for kind {kind!r} in {self.version}")
        text_format, needs = self._compiled[kind]
        context = self.context(dossier, previous_due_at, needs)
        # %-formatting never re-interprets values, so braces or % a citizen typed stay text.
        text = text_format % context
        return text, {name: context[name] for name in spec["params"]}

    def context(self, d: Dossier, previous_due_at: datetime | None,
                needed: Iterable[str] | None = None) -> dict[str, str]:
        return {key: _FIELDS[key](self, d, previous_due_at)
                for key in (needed if needed is not None else _FIELDS)}

    def link(self, code: str) -> str:
        return _url_part(code).join(self._link_parts)

    def date(self, moment: Any) -> str:
        text = self._dates.get(moment)
        if text is None:
            if len(self._dates) >= _DATE_CACHE:
                self._dates.clear()
            text = self._dates[moment] = format_date(moment, self.zone)
        return text


def _compile(spec: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A kind's text as a %-format (``"Mã {ma_ho_so} 100%"`` → ``"Mã %(ma_ho_so)s 100%%"``,
    filled twice as fast as str.format_map) and the fields its text and ZNS parameters use
    (only those are computed)."""
    parsed = list(string.Formatter().parse(spec["text"]))
    text_format = "".join(literal.replace("%", "%%") + (f"%({name})s" if name else "")
                          for literal, name, _, _ in parsed)
    names = {name for _, name, _, _ in parsed if name}
    return text_format, tuple(sorted(names | set(spec["params"])))


# Words of an organisation's name (a company registers, a school applies): never re-cased.
_ORGANISATION = ("CÔNG TY", "TNHH", "CỔ PHẦN", "HỢP TÁC XÃ", "DOANH NGHIỆP", "CHI NHÁNH",
                 "HỘ KINH DOANH", "TRƯỜNG", "BỆNH VIỆN", "ỦY BAN", "UBND", "JSC", "LTD")


def _name(d: Dossier) -> str:
    """The applicant as a letter addresses them: composed (NFC: a decomposed name counts
    twice its letters against a ZNS limit), and "Nguyễn Văn An" for NGUYỄN VĂN AN."""
    name = unicodedata.normalize("NFC", _text(d.applicant_name))
    if not name.isupper() or any(word in name for word in _ORGANISATION):
        return name  # "CÔNG TY TNHH ABC" is a name in capitals by right
    return name.title()


def _received(r: Renderer, d: Dossier, p: datetime | None) -> str:
    """ngay_nop and ngay_tiep_nhan: a desk that leaves received_at empty received the
    dossier when it changed status ("ngày chưa xác định" in a receipt reads as if nobody
    knew)."""
    return r.date(d.received_at if known(d.received_at) else d.updated_at)


_FIELDS: dict[str, Callable[[Renderer, Dossier, datetime | None], str]] = {
    "kinh_gui": lambda r, d, p: f"Ông/Bà {name}" if (name := _name(d)) else "Ông/Bà",
    "ten_nguoi_nop": lambda r, d, p: _name(d) or "Ông/Bà",
    "ma_ho_so": lambda r, d, p: d.code,
    "ten_thu_tuc": lambda r, d, p: _text(d.procedure_name) or _text(d.procedure_code) or "hành chính",
    "ngay_nop": _received,
    "ngay_tiep_nhan": _received,
    "ngay_hen_tra": lambda r, d, p: r.date(d.due_at),
    "ngay_hen_cu": lambda r, d, p: r.date(p),
    "ngay_hen_moi": lambda r, d, p: r.date(d.due_at),
    "ngay_tra": lambda r, d, p: r.date(d.finished_at if known(d.finished_at) else d.updated_at),
    # The sentence goes on with ". ": a reason typed with its own full stop would end in "..".
    "ly_do": lambda r, d, p: _text(d.note).rstrip(". ") or UNKNOWN_REASON,
    "so_tien": lambda r, d, p: fee_text(d.fee_amount),
    "noi_tra": lambda r, d, p: _text(d.agency_name) or UNKNOWN_PLACE,
    "trang_thai": lambda r, d, p: STATUS_FOR_CITIZENS.get(d.status, "Đang được giải quyết")
    if isinstance(d.status, int) else "Đang được giải quyết",
    "link_tra_cuu": lambda r, d, p: r.link(d.code),
}


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]*")


def _url_part(text: str) -> str:
    # Dossier codes are nearly always URL-safe already; quote() is the slow path.
    return text if _URL_SAFE.fullmatch(text) else quote(text, safe="")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
