"""The sentences a director quotes: the same figures in the text and HTML reports."""

from __future__ import annotations

from bridge.report.fmt import SMS_PARTS_VI, day, number, percent, vnd
from bridge.report.summary import Report

TITLE = "BÁO CÁO KẾT QUẢ THÔNG BÁO TÌNH TRẠNG HỒ SƠ QUA ZALO VÀ SMS"
PAGE_TITLE = "Báo cáo kết quả thông báo tình trạng hồ sơ qua Zalo và SMS"  # tab, PDF name


def period_line(r: Report) -> str:
    first, last = r.period.first, r.period.last
    if first == last:
        return f"Ngày {day(first)}"
    return f"Từ ngày {day(first)} đến ngày {day(last)}"


def savings_sentence(r: Report) -> str:
    """In the words of the 2019 Long An pilot report, with this period's own figures."""
    if r.total == 0:
        return "Không có thông báo nào phát sinh trong kỳ báo cáo."
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


def method(r: Report) -> str:
    """What the figures assume, in every format: the text and CSV travel without the HTML."""
    assumed = (f" {number(r.one_sms_assumed)} thông báo gửi trước khi hệ thống lưu số tiền SMS "
               "tương đương của từng thông báo được tính là một tin nhắn SMS."
               if r.one_sms_assumed else "")
    return (
        "Số liệu lấy từ sổ ghi nhận gửi tin của hệ thống (mỗi thông báo, mỗi lần gửi, kênh và "
        "giá cước); mỗi thông báo tính vào ngày hồ sơ được cập nhật, kể cả khi tin được gửi "
        "sau đó (ví dụ sáng hôm sau, ngoài giờ cấm gửi ban đêm). Tiết kiệm: với mỗi thông báo "
        "đã gửi không qua SMS, lấy số tiền thông báo đó sẽ tốn nếu gửi bằng SMS (nội dung SMS "
        f"của thông báo, {number(r.sms_price)} đồng/tin nhắn; {SMS_PARTS_VI}) trừ giá của kênh "
        "đã dùng (Zalo OA miễn phí; ZNS theo giá cước Zalo); thông báo đã phải gửi bằng SMS "
        "không được tính tiết kiệm. Giá cước là giá cấu hình trong hệ thống (theo hợp đồng, "
        "thường đã gồm VAT), không gồm phí duy trì thương hiệu SMS hay tài khoản Zalo OA. "
        "“Đã gửi” là Zalo hoặc nhà mạng đã nhận tin. “Gửi trong vòng 5 giây” tính từ lúc cán "
        "bộ cập nhật hồ sơ trong phần mềm một cửa. “Đúng hẹn”: kết quả sẵn sàng trước hoặc "
        "trong ngày hẹn trả; hồ sơ đã có phiếu xin lỗi, hẹn lại ngày trả là trễ hẹn. “Chưa gửi "
        "được”: thông báo còn chờ gửi lại hoặc không có kênh nào tới được người dân." + assumed)
