"""What the demo prints: citizens' messages as they arrive, and the day's summary (Vietnamese)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from bridge.phone import mask_phone
from bridge.report.fmt import SMS_PARTS_VI
from bridge.report.ledger_view import sms_equivalent
from bridge.samples import DayPlan
from bridge.settings import load_settings
from bridge.templates import format_vnd

CHANNEL_VI = {"zalo_oa": "Zalo OA", "zns": "Zalo ZNS", "sms": "SMS"}
KIND_VI = {
    "SUBMITTED": "Đã nộp trực tuyến", "RECEIVED": "Đã tiếp nhận", "REJECTED": "Từ chối tiếp nhận",
    "SUPPLEMENT_REQUESTED": "Yêu cầu bổ sung", "FEE_REQUESTED": "Yêu cầu nộp phí",
    "WITHDRAWN": "Rút hồ sơ", "STOPPED": "Dừng xử lý", "RESULT_READY": "Có kết quả",
    "RESULT_RETURNED": "Đã trả kết quả", "APOLOGY_RESCHEDULED": "Xin lỗi, hẹn lại",
}


def print_message(message: dict[str, Any]) -> None:
    channel = CHANNEL_VI.get(message.get("channel", ""), message.get("channel", "?"))
    who = mask_phone(message.get("phone")) if message.get("phone") else \
        f"người quan tâm {str(message.get('user_id', ''))[-4:]}"
    text = message.get("text") or _zns_text(message)
    at = datetime.now().strftime("%H:%M:%S")
    print(f"[{at}] {channel:<8} → {who:<22} {text[:150]}{'…' if len(text) > 150 else ''}")


def _zns_text(message: dict[str, Any]) -> str:
    """A ZNS message is a template plus parameters; show its kind and the key facts."""
    data = message.get("template_data") or {}
    kind = str(message.get("template_id", "")).removeprefix("onestop-").upper()
    facts = [data.get(k) for k in ("ngay_hen_tra", "ngay_hen_moi", "so_tien", "ly_do", "noi_tra")]
    return " · ".join([f"«{KIND_VI.get(kind, kind)}» hồ sơ {data.get('ma_ho_so', '')}",
                       data.get("ten_thu_tuc", ""), *[f for f in facts if f]])


# Why a notice was not sent, as the centre would say it (ledger error_class).
UNSENT_VI = {"RecipientError": "hồ sơ không có số điện thoại di động hợp lệ"}
# Dead-letter reasons of change events that never became a notice (bridge/dlq/headers.py).
UNREADABLE = ("malformed_event", "bad_input")


def print_summary(ledger_path: Path, plan: DayPlan, dead_lettered: dict[str, int]) -> None:
    from bridge.ledger.tables import notifications as n

    engine = create_engine(f"sqlite:///{ledger_path}")
    with engine.connect() as conn:
        rows = conn.execute(select(n.c.kind, n.c.channel, n.c.status, n.c.price_vnd,
                                   n.c.sms_equivalent_vnd, n.c.error_class)).all()
    engine.dispose()
    sent = [r for r in rows if r.status == "sent"]
    why = Counter(UNSENT_VI.get(r.error_class or "", "lý do khác, xem onestop-bridge dlq list")
                  for r in rows if r.status != "sent")
    sms_price = load_settings(None).prices.sms  # what the bridge ran with (env)
    by_channel = Counter(r.channel for r in sent)
    cost = sum(r.price_vnd or 0 for r in sent)
    all_sms = sum(sms_equivalent(r.sms_equivalent_vnd, sms_price) for r in sent)
    saved = sum(sms_equivalent(r.sms_equivalent_vnd, sms_price) - (r.price_vnd or 0)
                for r in sent if r.channel != "sms")
    print("\n══ Tổng kết một ngày làm việc ══")
    print(f"Hồ sơ: {plan.dossiers}; thông báo đã gửi: {len(sent)}; "
          f"chưa gửi được: {len(rows) - len(sent)}{_reasons(why)}; "
          f"thay đổi không đọc được (chuyển vào DLQ): "
          f"{sum(dead_lettered.get(reason, 0) for reason in UNREADABLE)}")
    print("Theo kênh:   " + ", ".join(f"{CHANNEL_VI.get(c, c)}: {k}" for c, k in by_channel.most_common()))
    kinds = Counter(r.kind for r in sent)
    print("Theo loại:   " + ", ".join(f"{KIND_VI.get(k, k)}: {c}" for k, c in kinds.most_common()))
    print(f"Chi phí:     {format_vnd(_d(cost))} "
          f"(nếu gửi toàn bộ bằng SMS: {format_vnd(_d(all_sms))})")
    print(f"Tiết kiệm:   {format_vnd(_d(saved))} so với gửi SMS {sms_price} đồng/tin nhắn "
          f"({SMS_PARTS_VI})")


def _reasons(why: Counter[str]) -> str:
    return f" ({'; '.join(f'{w}: {k}' for w, k in why.most_common())})" if why else ""


def _d(value: int) -> Any:
    from decimal import Decimal

    return Decimal(value)
