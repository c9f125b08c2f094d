"""Vietnamese number, money, percent and date formatting, and the labels a director reads.

Numbers are grouped with dots and decimals use a comma (``1.642.900 đồng``, ``97,5 %``),
as in the 2019 Long An pilot report and every Vietnamese administrative document.
"""

from __future__ import annotations

from datetime import date

# How gateways bill a long SMS (bridge/templates/sms.py), said wherever the SMS price is.
SMS_PARTS_VI = "tin có dấu dài quá 70 ký tự được tính thành nhiều tin"

# Notification kinds (design.md §3) as the one-stop centre names them.
KIND_VI: dict[str, str] = {
    "SUBMITTED": "Đã nhận hồ sơ nộp trực tuyến",
    "RECEIVED": "Tiếp nhận, hẹn ngày trả kết quả",
    "REJECTED": "Từ chối tiếp nhận hồ sơ",
    "SUPPLEMENT_REQUESTED": "Yêu cầu bổ sung giấy tờ",
    "FEE_REQUESTED": "Yêu cầu nộp phí, lệ phí",
    "WITHDRAWN": "Công dân rút hồ sơ",
    "STOPPED": "Dừng xử lý hồ sơ",
    "RESULT_READY": "Có kết quả, mời đến nhận",
    "RESULT_RETURNED": "Đã trả kết quả",
    "APOLOGY_RESCHEDULED": "Xin lỗi, hẹn lại ngày trả",
}
KIND_ORDER = tuple(KIND_VI)

# Delivery channels, cheapest first; "none" = not delivered (yet).
CHANNEL_VI: dict[str, str] = {
    "zalo_oa": "Zalo OA (tin quan tâm)",
    "zns": "Zalo ZNS (tin theo mẫu)",
    "sms": "Tin nhắn SMS",
    "none": "Chưa gửi được",
}
CHANNEL_SHORT_VI: dict[str, str] = {"zalo_oa": "Zalo OA", "zns": "Zalo ZNS", "sms": "SMS",
                                    "none": "Chưa gửi"}
CHANNEL_ORDER = ("zalo_oa", "zns", "sms", "none")
# Chart colours: Zalo blue shades for the Zalo channels, amber for paid SMS, grey for unsent.
CHANNEL_COLOUR: dict[str, str] = {"zalo_oa": "#0068ff", "zns": "#5ea8ff", "sms": "#e8a317",
                                  "none": "#b0b7c3"}


def number(value: int | float) -> str:
    """``1642900`` → ``1.642.900``; non-integers keep one decimal with a comma."""
    if isinstance(value, float) and not value.is_integer():
        whole = f"{value:,.1f}"
        return whole.replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{int(round(value)):,}".replace(",", ".")


def compact(value: float) -> str:
    """A large amount in words, for an axis tick: ``300000000`` → ``300 triệu``."""
    for size, word in ((1e9, "tỷ"), (1e6, "triệu")):
        if value >= size:
            return f"{number(round(value / size, 1))} {word}"
    return number(value)


def vnd(value: int | float) -> str:
    return f"{number(int(round(value)))} đồng"


def percent(part: int, whole: int) -> str:
    """``percent(39, 40)`` → ``97,5 %``; ``—`` when there is nothing to divide. Never 100 %
    or 0 % unless exact: 502 failures in 1.2 million are "> 99,9 %", not all sent."""
    if whole <= 0:
        return "—"
    share = 100.0 * part / whole
    text = f"{share:.1f}"
    if text == "100.0" and part != whole:
        return "> 99,9 %"
    if text == "0.0" and part != 0:
        return "< 0,1 %"
    return f"{text.replace('.', ',').removesuffix(',0')} %"


def day(d: date) -> str:
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def day_short(d: date) -> str:
    return f"{d.day:02d}/{d.month:02d}"


def kind_label(kind: str) -> str:
    return KIND_VI.get(kind, kind)


def channel_label(channel: str, short: bool = False) -> str:
    table = CHANNEL_SHORT_VI if short else CHANNEL_VI
    return table.get(channel, channel)


def sort_kinds(kinds: set[str]) -> list[str]:
    known = [k for k in KIND_ORDER if k in kinds]
    return known + sorted(kinds - set(KIND_ORDER))


def sort_channels(channels: set[str]) -> list[str]:
    known = [c for c in CHANNEL_ORDER if c in channels]
    return known + sorted(channels - set(CHANNEL_ORDER))
