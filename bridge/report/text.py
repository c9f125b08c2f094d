"""Plain-text report: Vietnamese headings, Vietnamese number format, fits an 80-column terminal."""

from __future__ import annotations

import textwrap

from bridge.report import headline
from bridge.report.fmt import (channel_label, kind_label, number, percent, sort_channels,
                               sort_kinds, vnd)
from bridge.report.summary import Report

WIDTH = 78


def render(r: Report) -> str:
    lines = [headline.TITLE, headline.period_line(r), ""]
    lines += _wrap(headline.savings_sentence(r))
    lines += (_wrap(headline.cost_sentence(r)) if r.total else []) + [""]
    lines += _overview(r) + [""] + _timing(r) + [""] + _channels(r) + [""] + _kinds(r)
    lines += [""] + _money(r) + [""] + _followers(r)
    lines += ["", "VII. CÁCH TÍNH", *textwrap.wrap(headline.method(r), WIDTH,
                                                   initial_indent="  ", subsequent_indent="  ")]
    return "\n".join(lines) + "\n"


def _overview(r: Report) -> list[str]:
    return ["I. TỔNG QUAN",
            _item("Số thông báo phát sinh", number(r.total)),
            _item("Đã gửi thành công", f"{number(r.sent)} ({percent(r.sent, r.total)})"),
            _item("Đang chờ gửi lại", number(r.waiting)),
            _item("Không gửi được (chờ xử lý thủ công)", number(r.dead - r.unreachable)),
            _item("Không có số điện thoại hoặc số không nhận được tin", number(r.unreachable))]


def _timing(r: Report) -> list[str]:
    lines = ["II. THỜI GIAN GỬI (tính từ lúc hồ sơ được cập nhật)",
             _item("Gửi trong vòng 5 giây", f"{number(r.within_fast)}/{number(r.timed)} "
                   f"({percent(r.within_fast, r.timed)})"),
             _item("Gửi trong vòng 1 phút", f"{number(r.within_minute)}/{number(r.timed)} "
                   f"({percent(r.within_minute, r.timed)})")]
    judged = r.results_ready - r.results_without_due
    lines.append(_item("Hồ sơ có kết quả đúng hẹn", f"{number(r.results_on_time)}/{number(judged)} "
                       f"({percent(r.results_on_time, judged)})"))
    lines.append(_item("Phiếu xin lỗi, hẹn lại ngày trả", number(r.apologies)))
    return lines


def _channels(r: Report) -> list[str]:
    sent = r.sent_by_channel()
    cost = r.cost_by_channel()
    lines = ["III. THEO KÊNH GỬI", _row("Kênh", "Số tin", "Chi phí")]
    for channel in sort_channels(set(sent) - {"none"}):
        lines.append(_row(channel_label(channel), number(sent[channel]), vnd(cost.get(channel, 0))))
    lines.append(_row("Cộng", number(r.sent), vnd(r.cost_vnd)))
    return lines


def _kinds(r: Report) -> list[str]:
    table = r.by_kind_channel()
    channels = sort_channels({c for _, c in table})
    kinds = sort_kinds({k for k, _ in table})
    rows = [[table.get((kind, c), 0) for c in channels] for kind in kinds]
    head = [channel_label(c, short=True) for c in channels] + ["Cộng"]
    cells = [[number(n) for n in [*counts, sum(counts)]] for counts in rows]
    # Each column as wide as its widest cell, two spaces apart: 1.200.000 never runs into 502.
    widths = [max(len(x) for x in column) + 2 for column in zip(head, *cells)]
    label = max([len("Loại thông báo"), *(len(kind_label(k)) for k in kinds)])
    lines = ["IV. THEO LOẠI THÔNG BÁO (số thông báo theo kênh)",
             "  " + "Loại thông báo".ljust(label) + _columns(head, widths)]
    lines += ["  " + kind_label(kind).ljust(label) + _columns(row, widths)
              for kind, row in zip(kinds, cells)]
    return lines


def _columns(cells: list[str], widths: list[int]) -> str:
    return "".join(cell.rjust(width) for cell, width in zip(cells, widths))


def _money(r: Report) -> list[str]:
    return ["V. CHI PHÍ VÀ TIẾT KIỆM",
            _item("Nếu gửi toàn bộ bằng SMS", vnd(r.sms_equivalent_vnd)),
            _item("Chi phí thực tế", vnd(r.cost_vnd)),
            _item("Tiết kiệm so với SMS", vnd(r.savings_vnd)),
            _item("Giá cước SMS dùng để so sánh",
                  f"{number(r.sms_price)} đồng/tin (70 ký tự có dấu)")]


def _followers(r: Report) -> list[str]:
    return ["VI. NGƯỜI DÂN KẾT NỐI ZALO OA",
            _item("Số người đã liên kết số điện thoại", number(r.followers.total)),
            _item("Trong đó liên kết mới trong kỳ", number(r.followers.new_in_period))]


def _item(label: str, value: str) -> str:
    dots = max(2, WIDTH - 4 - len(label) - len(value))
    return f"  {label} {'.' * dots} {value}"


def _row(label: str, count: str, money: str) -> str:
    return f"  {label.ljust(34)}{count.rjust(10)}{money.rjust(WIDTH - 46)}"


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH)
