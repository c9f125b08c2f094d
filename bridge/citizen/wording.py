"""What the OA says to citizens: short, polite Vietnamese with full diacritics.

Values (codes, dates, reasons from the one-stop database) are inserted with f-strings
or concatenation only; nothing a citizen typed is ever used as a format string.
"""

from __future__ import annotations

from bridge.citizen.messages import (
    BUTTON_TITLE_MAX, Button, clip, phone_button, query_button, url_button,
)
from bridge.settings import Centre, Settings
from bridge.templates import group_digits

EXAMPLE_CODE = "000.00.23.H39-240612-0001"
LOOKUP_QUERY = "Tra cứu hồ sơ"
PROCEDURE_QUERY = "Tra cứu thủ tục"
SUPPORT_QUERY = "Hỗ trợ"

TOPIC_LABEL = {"tin-tuc": "tin tức của tỉnh", "khan-cap": "thông báo khẩn cấp"}
TOPIC_COMMAND = {"tin-tuc": "tin tức", "khan-cap": "khẩn cấp"}
SCORE_LABEL = {5: "Rất hài lòng", 4: "Hài lòng", 3: "Bình thường", 2: "Không hài lòng",
               1: "Rất không hài lòng"}

HELP = (
    "Xin chào Ông/Bà! Ông/Bà có thể nhắn vào đây:\n"
    f"• mã hồ sơ in trên Giấy tiếp nhận (ví dụ {EXAMPLE_CODE}) để tra cứu tình trạng hồ sơ;\n"
    "• \"thủ tục\" kèm từ khóa (ví dụ: thủ tục khai sinh) để xem hướng dẫn thủ tục;\n"
    "• \"hỗ trợ\" để xem số điện thoại tổng đài;\n"
    "• \"góp ý\" kèm nội dung để gửi ý kiến;\n"
    "• \"đăng ký tin tức\" hoặc \"đăng ký khẩn cấp\" để nhận tin của tỉnh."
)
ACKNOWLEDGED = ("Dạ, cảm ơn Ông/Bà! Khi cần, Ông/Bà gửi mã hồ sơ để tra cứu, hoặc gửi \"hỗ trợ\" "
                "để xem số tổng đài.")
SHARE_TITLE = "Nhận thông báo hồ sơ qua Zalo"
SHARE_SUBTITLE = ("Ông/Bà vui lòng chia sẻ số điện thoại đã khai khi nộp hồ sơ để nhận thông báo "
                  "tình trạng hồ sơ miễn phí qua Zalo và xem chi tiết hồ sơ khi tra cứu.")
LOOKUP_HELP = ("Ông/Bà vui lòng gửi mã hồ sơ in trên Giấy tiếp nhận hồ sơ và hẹn trả kết quả, "
               f"ví dụ: {EXAMPLE_CODE}. Có thể gửi nhiều mã trong một tin nhắn.")
PROCEDURE_HELP = ("Ông/Bà vui lòng gửi \"thủ tục\" kèm từ khóa, ví dụ: thủ tục khai sinh, "
                  "thủ tục sổ đỏ, thủ tục hộ kinh doanh.")
PROCEDURE_NONE = ("Chưa tìm thấy thủ tục phù hợp với từ khóa Ông/Bà gửi. Ông/Bà vui lòng thử từ "
                  "khóa khác (ví dụ: khai sinh, chứng thực, giấy phép xây dựng) hoặc tra cứu trên "
                  "Cổng Dịch vụ công.")
FEEDBACK_EMPTY = ("Ông/Bà vui lòng gửi \"góp ý\" kèm nội dung, ví dụ: góp ý thời gian chờ tại "
                  "quầy còn lâu.")
INVALID_PHONE = ("Số điện thoại Ông/Bà chia sẻ chưa phải số di động Việt Nam hợp lệ nên chưa liên "
                 "kết được. Ông/Bà vui lòng kiểm tra lại thông tin trên Zalo và chia sẻ lại.")
NO_OPEN_DOSSIERS = "Hiện chưa có hồ sơ nào đang giải quyết với số điện thoại này."
RATING_UNKNOWN = ("Không tìm thấy yêu cầu đánh giá cho hồ sơ này. Nếu cần góp ý, Ông/Bà vui lòng "
                  "gửi \"góp ý\" kèm nội dung.")


def welcome(settings: Settings) -> str:
    centre = settings.oa.centres[0].name if settings.oa.centres else "Trung tâm Phục vụ hành chính công"
    return (f"Cảm ơn Ông/Bà đã quan tâm kênh Zalo của {centre}!\n"
            "Tại đây Ông/Bà được thông báo miễn phí tình trạng hồ sơ thủ tục hành chính, tra cứu "
            "hồ sơ, tra cứu thủ tục và liên hệ tổng đài hỗ trợ. " + HELP.split("! ", 1)[1])


def menu_buttons(settings: Settings) -> list[Button]:
    """The pilot's three menus: Thông tin (portals), Dịch vụ công (lookups), Hỗ trợ (hotline)."""
    buttons = [url_button("Cổng Dịch vụ công của tỉnh", settings.oa.province_portal_url),
               url_button("Cổng Dịch vụ công quốc gia", settings.oa.portal_url),
               query_button(LOOKUP_QUERY, LOOKUP_QUERY),
               query_button(PROCEDURE_QUERY, PROCEDURE_QUERY)]
    if settings.oa.centres:
        buttons.append(phone_button("Gọi tổng đài hỗ trợ", settings.oa.centres[0].hotline))
    return buttons


def support(centres: list[Centre]) -> tuple[str, list[Button]]:
    if not centres:
        return "Ông/Bà vui lòng liên hệ Bộ phận Một cửa nơi nộp hồ sơ để được hỗ trợ.", []
    lines = ["Tổng đài hỗ trợ thủ tục hành chính:"]
    lines += [f"• {c.name}: {c.hotline} ({c.hours})" for c in centres]
    if len(centres) == 1:
        return "\n".join(lines), [phone_button("Gọi tổng đài hỗ trợ", centres[0].hotline)]
    buttons = [phone_button(clip("Gọi " + c.name, BUTTON_TITLE_MAX), c.hotline) for c in centres[:5]]
    return "\n".join(lines), buttons


def linked(phone_local: str, open_count: int) -> str:
    text = (f"Cảm ơn Ông/Bà! Số điện thoại {phone_local} đã được liên kết với tài khoản Zalo này. "
            "Từ nay, thông báo về các hồ sơ khai số điện thoại này sẽ được gửi miễn phí qua Zalo.")
    if open_count:
        return text + f"\nÔng/Bà có {open_count} hồ sơ đang được giải quyết, tình trạng như sau:"
    return text + "\n" + NO_OPEN_DOSSIERS


PARTIAL_CODE = ("Mã hồ sơ Ông/Bà gửi chưa đầy đủ hoặc chưa đúng. Mã có dạng "
                f"{EXAMPLE_CODE}, in ở đầu Giấy tiếp nhận hồ sơ và hẹn trả kết quả. "
                "Ông/Bà vui lòng gửi lại đủ mã.")


def code_sent(phone_local: str, minutes: int) -> str:
    return (f"Mã xác nhận gồm 6 chữ số vừa được gửi qua Zalo đến số {phone_local}. Ông/Bà vui "
            f"lòng nhắn mã đó vào đây trong vòng {minutes} phút để hoàn tất liên kết số điện "
            "thoại. Nếu số này không phải của Ông/Bà, xin bỏ qua tin nhắn này.")


def code_recent(phone_local: str) -> str:
    return (f"Mã xác nhận vừa được gửi đến số {phone_local}. Ông/Bà vui lòng kiểm tra tin nhắn "
            "Zalo của số này và nhắn mã vào đây.")


def code_busy(hotline: str) -> str:
    return ("Số điện thoại hoặc tài khoản Zalo này vừa được gửi nhiều mã xác nhận. Ông/Bà vui "
            f"lòng thử lại sau vài giờ, hoặc {_contact(hotline)} để được hỗ trợ.")


def code_not_sent(phone_local: str, why: str, hotline: str) -> str:
    """`why`: "night" (Zalo sends no ZNS from 22:00 to 06:00), "no_zalo", or anything else."""
    if why == "night":
        return (f"Ban đêm (từ 22 giờ đến 6 giờ) Zalo chưa gửi được mã xác nhận đến số "
                f"{phone_local}. Ông/Bà vui lòng chia sẻ lại số điện thoại sau 6 giờ sáng.")
    if why == "no_zalo":  # sharing again cannot help; the notices still reach the number
        return (f"Số {phone_local} chưa đăng ký Zalo nên chưa thể liên kết với tài khoản này. "
                "Thông báo về hồ sơ khai số này vẫn được gửi đến số đó bằng tin nhắn SMS.")
    return (f"Chưa gửi được mã xác nhận đến số {phone_local}. Ông/Bà vui lòng kiểm tra số "
            "điện thoại này có dùng Zalo và chia sẻ lại sau ít phút, hoặc "
            f"{_contact(hotline)} để được hỗ trợ.")


def code_wrong(left: int) -> str:
    return f"Mã xác nhận chưa đúng. Ông/Bà còn {left} lần thử."


def code_over(expired: bool, tries: int) -> str:
    why = "Mã xác nhận đã hết hiệu lực" if expired else \
        f"Ông/Bà đã nhập sai mã xác nhận quá {tries} lần"
    return f"{why}. Ông/Bà vui lòng chia sẻ lại số điện thoại để nhận mã mới."


def own_dossiers(count: int) -> str:
    return (f"Ông/Bà có {count} hồ sơ đang được giải quyết theo số điện thoại đã liên kết, tình "
            "trạng như sau. Để tra cứu hồ sơ khác, Ông/Bà gửi mã hồ sơ in trên Giấy tiếp nhận.")


def hotline(settings: Settings) -> str:
    """The first centre's hotline, "" when none is configured."""
    return settings.oa.centres[0].hotline if settings.oa.centres else ""


def _contact(hotline: str) -> str:
    """Whom to turn to: the hotline when one is configured, else the desk."""
    return f"gọi tổng đài {hotline}" if hotline else "liên hệ Bộ phận Một cửa nơi nộp hồ sơ"


def phone_taken(phone_local: str, hotline: str) -> str:
    return (f"Số điện thoại {phone_local} đã được liên kết với một tài khoản Zalo khác, nên thông "
            "báo hồ sơ của số này chưa thể gửi đến tài khoản này. Nếu đây là số của Ông/Bà, "
            f"vui lòng {_contact(hotline)} để được hỗ trợ.")


def challenge(codes: list[str]) -> str:
    if len(codes) == 1:
        # The code's own last digits must not read as the example of what to send.
        return (f"Hồ sơ {codes[0]}: để bảo vệ thông tin cá nhân, Ông/Bà vui lòng gửi 4 chữ số "
                "cuối của số điện thoại đã khai khi nộp hồ sơ (ví dụ số 0987 654 321 thì gửi 4321).")
    # Two dossiers may have two applicants: the digits open those filed with that number.
    return ("Để bảo vệ thông tin cá nhân, Ông/Bà vui lòng gửi 4 chữ số cuối của số điện thoại "
            f"đã khai khi nộp hồ sơ ({', '.join(codes)}); hồ sơ nào khai số đó sẽ được hiển thị.")


def wrong_factor(left: int) -> str:
    return f"4 chữ số cuối chưa đúng. Ông/Bà còn {left} lần thử."


def locked(max_attempts: int, until_hhmm: str, hotline: str) -> str:
    help_line = f" Nếu cần hỗ trợ, Ông/Bà vui lòng {_contact(hotline)}."
    # Unknown codes count too (they are how codes are guessed), so not "wrong digits".
    return (f"Ông/Bà đã tra cứu không thành công {max_attempts} lần. Để bảo vệ thông tin cá "
            f"nhân, chức năng tra cứu hồ sơ tạm khóa đến {until_hhmm}.{help_line}")


def not_found(code: str) -> str:
    return (f"Không tìm thấy hồ sơ mã số {code}. Ông/Bà vui lòng kiểm tra lại mã in trên Giấy "
            "tiếp nhận hồ sơ và hẹn trả kết quả.")


def no_phone(code: str, hotline: str) -> str:
    return (f"Hồ sơ {code} không có số điện thoại đăng ký nên chưa thể xác minh qua Zalo. "
            f"Ông/Bà vui lòng {_contact(hotline)} để được hỗ trợ.")


def too_many_codes(limit: int) -> str:
    return f"Mỗi lần Ông/Bà tra cứu được tối đa {limit} hồ sơ; các mã sau đó chưa được tra cứu."


def rating_prompt(code: str) -> str:
    return (f"Hồ sơ {code} đã hoàn thành. Ông/Bà vui lòng đánh giá mức độ hài lòng với việc giải "
            "quyết hồ sơ (chọn một mức bên dưới):")


def rating_thanks(code: str, score: int) -> str:
    text = f"Cảm ơn Ông/Bà đã đánh giá hồ sơ {code}: {score}/5 ({SCORE_LABEL[score]})."
    if score <= 2:
        text += (" Rất mong Ông/Bà cho biết điều chưa hài lòng: gửi \"góp ý\" kèm nội dung để "
                 "nơi giải quyết hồ sơ cải thiện.")
    return text


def feedback_thanks(code: str | None) -> str:
    about = f" về hồ sơ {code}" if code else ""
    return f"Góp ý của Ông/Bà{about} đã được ghi nhận. Xin chân thành cảm ơn!"


def feedback_cut(limit: int) -> str:
    return (f"Góp ý dài hơn {group_digits(limit)} ký tự nên phần sau đó chưa được ghi nhận; Ông/Bà vui lòng "
            "gửi tiếp phần còn lại trong một góp ý khác.")


def subscribed(topic: str) -> str:
    return (f"Ông/Bà đã đăng ký nhận {TOPIC_LABEL[topic]}. Để hủy, Ông/Bà gửi "
            f"\"hủy đăng ký {TOPIC_COMMAND[topic]}\".")


def unsubscribed(topics: list[str]) -> str:
    labels = " và ".join(TOPIC_LABEL[t] for t in topics)
    return f"Ông/Bà đã hủy đăng ký nhận {labels}. Ông/Bà có thể đăng ký lại bất cứ lúc nào."
