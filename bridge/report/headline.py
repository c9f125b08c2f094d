"""The sentences a director quotes: the same figures in the text and HTML reports."""

from __future__ import annotations

from bridge.report.fmt import SMS_PARTS_VI, day, number, percent, vnd
from bridge.report.summary import Report

TITLE = "BÁO CÁO KẾT QUẢ THÔNG BÁO TÌNH TRẠNG HỒ SƠ QUA ZALO VÀ SMS"


def period_line(r: Report) -> str:
    first, last = r.period.first, r.period.last
    if first == last:
        return f"Ngày {day(first)}"
    return f"Từ ngày {day(first)} đến ngày {day(last)}"


def savings_sentence(r: Report) -> str:
    """In the words of the 2019 Long An pilot report, with this period's own figures."""
    return (f"Tổng số tin nhắn Zalo trong giải quyết hồ sơ thủ tục hành chính đạt "
            f"{number(r.zalo_sent)} lượt, giảm chi phí tin nhắn {vnd(r.savings_vnd)} so với gửi "
            f"bằng SMS (giá cước tin nhắn SMS là {number(r.sms_price)} đồng/tin nhắn; "
            f"{SMS_PARTS_VI}).")


def cost_sentence(r: Report) -> str:
    return (f"{number(r.sent)} tin nhắn đã gửi đến người dân; nếu gửi toàn bộ bằng SMS sẽ tốn "
            f"{vnd(r.sms_equivalent_vnd)}, chi phí thực tế là {vnd(r.cost_vnd)}.")


def delivery_sentence(r: Report) -> str:
    text = (f"Đã gửi thành công {number(r.sent)}/{number(r.total)} thông báo "
            f"({percent(r.sent, r.total)})")
    if r.timed:
        text += f"; {percent(r.within_fast, r.timed)} được gửi trong vòng 5 giây kể từ khi " \
                "hồ sơ được cập nhật"
    return text + "."


def on_time_sentence(r: Report) -> str | None:
    judged = r.results_ready - r.results_without_due
    if judged <= 0:
        return None
    text = (f"{number(r.results_on_time)}/{number(judged)} hồ sơ có kết quả đúng hẹn "
            f"({percent(r.results_on_time, judged)})")
    if r.apologies:
        text += f"; {number(r.apologies)} phiếu xin lỗi và hẹn lại ngày trả đã được gửi"
    return text + "."
