"""The channel plan and the retry policy, against a scripted fake upstream."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from dispatch_fakes import FakeClock, FakeUpstream, body

from bridge import metrics
from bridge.dispatch import Dispatcher
from bridge.dispatch.channels import SmsChannel, ZaloChannels
from bridge.dispatch.classify import LOCAL_TZ, NIGHT_RECHECK, QUOTA_RECHECK
from bridge.dispatch.http import make_client
from bridge.dispatch.quota import QuotaReading, ZnsQuota
from bridge.dispatch.ratelimit import RateLimiter
from bridge.dispatch.retry import RetryPolicy
from bridge.dispatch.sms import SmsClient
from bridge.dispatch.tokens import MemoryTokenStore, TokenManager
from bridge.dispatch.zalo import ZaloClient
from bridge.errors import DeferError, ProviderBusy, QuotaExhausted, RecipientError, TransportError
from bridge.model import Notification
from bridge.settings import Settings

PHONE = "84912345678"


class Followers:
    def __init__(self, links: dict[str, str] | None = None, fail: bool = False) -> None:
        self.links = links or {}
        self.fail = fail

    def user_for_phone(self, phone: str) -> str | None:
        if self.fail:
            raise RuntimeError("database down")
        return self.links.get(phone)


def make(up: FakeUpstream, clock: FakeClock, *, followers: Followers | None = None,
         **overrides: Any) -> Dispatcher:
    settings = Settings(**{"zalo": {"refresh_token": "RT-0", "oa_base_url": "https://oa.test",
                                    "zns_base_url": "https://zns.test",
                                    "oauth_base_url": "https://oauth.test",
                                    "zns_templates": {"RESULT_READY": "tpl-result"}},
                           "sms": {"base_url": "https://sms.test"}, **overrides})
    client = make_client(timeout_s=2, transport=up.transport())
    zalo_client = ZaloClient(settings.zalo, client, wall=clock.wall)
    tokens = TokenManager(MemoryTokenStore(), zalo_client.refresh, initial_refresh_token="RT-0",
                          clock=clock.time)
    limiter = RateLimiter.per_minute("zalo_app", settings.zalo.oa_rate_per_minute,
                                     clock=clock.monotonic, sleep=clock.sleep, wall=clock.wall)
    channels = ZaloChannels(zalo_client, tokens, limiter)
    channels.quota = ZnsQuota(channels.read_quota, clock=clock.monotonic, wall=clock.wall)
    sms = SmsChannel(SmsClient(settings.sms, client, wall=clock.wall),
                     RateLimiter.per_second("sms", 1000, clock=clock.monotonic, sleep=clock.sleep))
    return Dispatcher(settings, channels, sms, followers=followers,
                      retry=RetryPolicy(settings.dispatch, sleep=clock.sleep, wall=clock.wall),
                      wall=clock.wall)


def note(phone: str | None = PHONE, kind: str = "RECEIVED", **kw: Any) -> Notification:
    fields: dict[str, Any] = dict(
        dossier_code="H12.34-261103-0001", dossier_id=1, kind=kind, phone=phone,
        text="Hồ sơ H12.34-261103-0001 đã được tiếp nhận.", template_data={"ma_ho_so": "H12"},
        idempotency_key=f"1:{kind}:v1", event_id="pg:1:0/16B3748", source_ts_ms=None,
        template_version="v1")
    fields.update(kw)
    return Notification(**fields)


def counter(metric: Any, **labels: str) -> float:
    return metric.labels(**labels)._value.get() if labels else metric._value.get()


@pytest.fixture()
def up() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


def test_follower_gets_the_free_oa_message(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, followers=Followers({PHONE: "u-1"}))
    saved = counter(metrics.sms_savings_vnd)
    out = d.deliver(note())
    assert (out.status, out.channel, out.price_vnd) == ("sent", "zalo_oa", 0)
    assert out.provider_message_id and out.provider_message_id.startswith("oa-")
    assert [a.result for a in out.attempts] == ["ok"]
    sent = body(up.calls("oa")[0])
    assert sent["recipient"] == {"user_id": "u-1"} and sent["tracking_id"] == "1:RECEIVED:v1"
    # In the chat the notice carries a lookup button rather than a link back to the chat.
    assert sent["message"] == {"text": note().text, "attachment": {"type": "template", "payload": {
        "buttons": [{"title": "Tra cứu hồ sơ này", "type": "oa.query.show",
                     "payload": "Tra cứu hồ sơ H12.34-261103-0001"}]}}}
    assert counter(metrics.sms_savings_vnd) - saved == 350
    assert not up.calls("zns") and not up.calls("sms")


def test_no_follower_goes_to_zns_with_the_kind_template(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    cost = counter(metrics.cost_vnd, channel="zns")
    saved = counter(metrics.sms_savings_vnd)
    out = d.deliver(note(kind="RESULT_READY"))
    assert (out.status, out.channel, out.price_vnd) == ("sent", "zns", 150)
    assert body(up.calls("zns")[0])["template_id"] == "tpl-result"
    out = d.deliver(note(kind="SUPPLEMENT_REQUESTED"))
    assert body(up.calls("zns")[1])["template_id"] == "onestop-supplement_requested"
    assert counter(metrics.cost_vnd, channel="zns") - cost == 300
    assert counter(metrics.sms_savings_vnd) - saved == 400


def test_oa_refusal_falls_to_zns_then_no_zalo_falls_to_sms(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, followers=Followers({PHONE: "u-1"}))
    up.script("oa", {"error": -230})
    up.script("zns", {"error": -118})
    sms_sent = counter(metrics.notifications, kind="RECEIVED", channel="sms", outcome="sent")
    saved = counter(metrics.sms_savings_vnd)
    out = d.deliver(note())
    assert (out.status, out.channel, out.price_vnd) == ("sent", "sms", 350)
    assert [(a.channel, a.result, a.error_code) for a in out.attempts] == [
        ("zalo_oa", "unreachable", -230), ("zns", "unreachable", -118), ("sms", "ok", None)]
    assert body(up.calls("sms")[0])["text"] == note().text
    assert counter(metrics.notifications, kind="RECEIVED", channel="sms", outcome="sent") - sms_sent == 1
    assert counter(metrics.sms_savings_vnd) == saved  # nothing saved when SMS fired


def result_ready() -> Notification:
    """A notice whose short SMS text (bridge/templates) takes three Unicode parts."""
    data = {"ten_nguoi_nop": "Lê Thị Hà", "ma_ho_so": "000.00.23.H39-261127-0066",
            "ten_thu_tuc": "Đăng ký biến động đất đai",
            "noi_tra": "Chi nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc"}
    return note(kind="RESULT_READY", template_data=data, template_version="tt01-2018")


def test_a_long_sms_costs_and_saves_by_its_parts(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, followers=Followers({PHONE: "u-1"}))
    saved = counter(metrics.sms_savings_vnd)
    out = d.deliver(result_ready())
    assert (out.channel, out.price_vnd, out.sms_equivalent_vnd) == ("zalo_oa", 0, 3 * 350)
    assert counter(metrics.sms_savings_vnd) - saved == 1050

    up.script("oa", {"error": -230})
    up.script("zns", {"error": -118})
    cost = counter(metrics.cost_vnd, channel="sms")
    out = d.deliver(result_ready())
    assert (out.channel, out.price_vnd, out.sms_equivalent_vnd) == ("sms", 1050, 1050)
    assert out.attempts[-1].price_vnd == 1050 and counter(metrics.cost_vnd, channel="sms") - cost == 1050
    text = body(up.calls("sms")[0])["text"]
    assert text == ("Hồ sơ 000.00.23.H39-261127-0066 đã có kết quả. Mời Ông/Bà đến nhận tại Chi "
                    "nhánh Văn phòng đăng ký đất đai khu vực Cần Giuộc, mang giấy hẹn, giấy tờ tùy "
                    "thân; nhận thay cần giấy ủy quyền.")


def test_an_sms_costs_what_the_gateway_says_it_charged(up: FakeUpstream, clock: FakeClock) -> None:
    """Carriers price differently (320–820 đồng a part): the gateway's answer is the cost."""
    d = make(up, clock)
    up.script("zns", {"error": -118})
    up.script("sms", httpx.Response(200, json={"sms_id": "sms-vt", "status": "accepted",
                                                "parts": 3, "price": 2460}))
    cost = counter(metrics.cost_vnd, channel="sms")
    out = d.deliver(result_ready())
    assert (out.channel, out.price_vnd, out.sms_equivalent_vnd) == ("sms", 2460, 2460)
    assert out.attempts[-1].price_vnd == 2460 and counter(metrics.cost_vnd, channel="sms") - cost == 2460


def test_transient_errors_are_retried_with_backoff(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("zns", {"error": -100}, 503)
    out = d.deliver(note())
    assert (out.status, out.channel) == ("sent", "zns")
    assert [a.result for a in out.attempts] == ["retryable", "retryable", "ok"]
    assert len(clock.sleeps) == 2 and all(0 < s <= 5.0 for s in clock.sleeps)


def test_exhausted_budget_goes_to_the_caller_not_to_sms(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("zns", {"error": -100}, httpx.ReadTimeout("t"), 502)
    with pytest.raises((ProviderBusy, TransportError)) as info:
        d.deliver(note())
    assert len(info.value.attempts) == 3  # type: ignore[attr-defined]
    assert not up.calls("sms")


def test_daily_quota_defers_and_night_ban_never_falls_to_sms(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("zns", {"error": -144})
    with pytest.raises(DeferError) as info:
        d.deliver(note())
    assert info.value.until - clock.wall() == QUOTA_RECHECK  # 10:00: sooner than the reset
    up.script("zns", {"error": -133})
    assert d.zalo.quota.remaining == 0  # -144 is trusted locally: no more calls today…
    d.zalo.quota.observe(QuotaReading(500, 400))  # …until Zalo reports a fresh quota
    with pytest.raises(DeferError) as info:
        d.deliver(note())
    assert info.value.until - clock.wall() == NIGHT_RECHECK  # 10:00 here: Zalo's window, not ours
    assert not up.calls("sms")


def test_with_quota_fallback_a_used_up_zns_quota_goes_on_to_sms(up: FakeUpstream, clock: FakeClock) -> None:
    """The citizen hears today, at SMS's price, instead of at 06:00 tomorrow; the night ban
    still never falls through."""
    d = make(up, clock, dispatch={"quota_fallback": True})
    up.script("zns", {"error": -144})
    out = d.deliver(note())
    assert (out.status, out.channel) == ("sent", "sms")
    assert [(a.channel, a.result) for a in out.attempts] == [("zns", "rate_limited"), ("sms", "ok")]
    assert d.deliver(note(idempotency_key="k2")).channel == "sms"  # the local count knows
    assert len(up.calls("zns")) == 1
    d.zalo.quota.observe(QuotaReading(500, 400))
    up.script("zns", {"error": -133})
    with pytest.raises(DeferError) as info:
        d.deliver(note(idempotency_key="k3"))
    assert info.value.until - clock.wall() == NIGHT_RECHECK and len(up.calls("sms")) == 2


def test_with_quota_fallback_and_sms_refusing_the_notice_waits_for_the_reset(
        up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, dispatch={"quota_fallback": True})
    up.script("zns", {"error": -144})
    up.script("sms", httpx.Response(400, json={"error": "invalid_phone"}))
    with pytest.raises(QuotaExhausted) as info:
        d.deliver(note())
    assert info.value.until - clock.wall() == QUOTA_RECHECK
    assert [a.result for a in info.value.attempts] == ["rate_limited", "unreachable"]  # type: ignore[attr-defined]


def test_token_refused_mid_stream_refreshes_once(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    d.deliver(note())
    up.access_token = "AT-revoked"  # Zalo invalidated our token
    out = d.deliver(note(idempotency_key="k2"))
    assert (out.status, out.channel) == ("sent", "zns")
    assert [a.result for a in out.attempts] == ["auth", "ok"]
    assert len(up.calls("oauth")) == 2


def test_every_channel_refusing_is_a_failed_outcome(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("zns", {"error": -118})
    up.script("sms", httpx.Response(400, json={"error": "invalid_phone"}))
    failed = counter(metrics.notifications, kind="RECEIVED", channel="none", outcome="failed")
    out = d.deliver(note())
    assert (out.status, out.channel, out.provider_message_id, out.price_vnd) == ("failed", None, None, 0)
    assert out.reason == "sms: gateway refused the phone number"  # the channel named once
    assert counter(metrics.notifications, kind="RECEIVED", channel="none", outcome="failed") - failed == 1


def test_sms_leaves_out_what_only_works_in_zalo(up: FakeUpstream, clock: FakeClock) -> None:
    """A phone without Zalo (-118) gets the receipt by SMS, without the Zalo lookup link."""
    d = make(up, clock)
    up.script("zns", {"error": -118})
    text = ("Kính gửi Ông/Bà An, hồ sơ mã số H12.34-261103-0001 đã được tiếp nhận. Ngày hẹn trả "
            "kết quả: 20/11/2026. Để tra cứu tình trạng hồ sơ, Ông/Bà mở đường dẫn sau bằng Zalo "
            "rồi nhắn mã hồ sơ vào khung chat: https://zalo.me/1032900368640139458?tra-cuu=H12")
    assert d.deliver(note(text=text)).channel == "sms"
    [sent] = up.calls("sms")
    assert json.loads(sent.content)["text"] == ("Kính gửi Ông/Bà An, hồ sơ mã số H12.34-261103-0001 "
                                                "đã được tiếp nhận. Ngày hẹn trả kết quả: 20/11/2026.")


def test_sms_disabled_stops_after_zns(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, sms={"base_url": "https://sms.test", "enabled": False})
    up.script("zns", {"error": -118})
    assert d.deliver(note()).status == "failed" and not up.calls("sms")


def test_no_phone_and_no_follower_is_permanent(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, followers=Followers({PHONE: "u-1"}))
    with pytest.raises(RecipientError, match="no reachable recipient"):
        d.deliver(note(phone=None))
    assert not up.requests


def test_follower_lookup_failure_skips_oa(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock, followers=Followers(fail=True))
    assert d.deliver(note()).channel == "zns"


def test_short_sms_rate_limit_is_absorbed(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("zns", {"error": -118})
    up.script("sms", httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "rate"}))
    out = d.deliver(note())
    assert out.channel == "sms" and [a.result for a in out.attempts][-2:] == ["rate_limited", "ok"]
    assert clock.sleeps[-1] == pytest.approx(1.0)


def test_event_to_sent_latency_is_observed(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    hist = metrics.event_to_sent.labels(channel="zns")
    before = hist._sum.get()
    d.deliver(note(source_ts_ms=int(clock.time() * 1000) - 2500))
    assert hist._sum.get() - before == pytest.approx(2.5, abs=0.01)


def test_send_oa_message_for_the_citizen_side(up: FakeUpstream, clock: FakeClock) -> None:
    d = make(up, clock)
    up.script("oa", {"error": -200})
    message = {"text": "Chọn", "attachment": {"type": "template", "payload": {
        "template_type": "request_user_info",
        "elements": [{"title": "Chia sẻ số điện thoại", "subtitle": "để nhận thông báo",
                      "image_url": "https://x/y.png"}]}}}
    assert d.send_oa_message("u-9", message).startswith("oa-")
    assert body(up.calls("oa")[-1])["message"] == message
    assert len(up.calls("oa")) == 2  # -200 retried once


def test_logs_mask_phones_and_never_carry_tokens(up: FakeUpstream, clock: FakeClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    d = make(up, clock)
    up.script("zns", {"error": -118})
    d.deliver(note())
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert PHONE not in text and "849xxxxx678" in text
    assert "AT-1" not in text and "RT-" not in text
    assert "H12.34-261103-0001" in text and "1:RECEIVED:v1" in text



def test_postponed_deliveries_are_logged_once_per_episode(up: FakeUpstream, clock: FakeClock,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A night window postpones every ZNS notice: one WARNING when it starts, a reminder
    every 5 minutes, one INFO when ZNS delivers again — not a WARNING per notice."""
    caplog.set_level("DEBUG", logger="bridge.dispatch")
    d = make(up, clock)

    def lines(level: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelname == level
                and r.name == "bridge.dispatch.postponements"]

    for i in range(40):
        up.script("zns", {"error": -133})
        with pytest.raises(DeferError):
            d.deliver(note(idempotency_key=f"k{i}", dossier_code=f"H12-{i:04d}"))
        clock.advance(10)  # 400 s in all: one reminder
    first, reminder = lines("WARNING")
    assert "H12-0000" in str(first.__dict__) and first.__dict__["code"] == -133
    assert first.__dict__["until"] == (clock.wall() - timedelta(seconds=400) + NIGHT_RECHECK).isoformat()
    assert (reminder.__dict__["postponed"], reminder.__dict__["codes"]) == (31, "-133 ×31")
    assert len(lines("DEBUG")) == 38 and not lines("INFO")
    assert d.deliver(note(idempotency_key="day")).channel == "zns"
    (again,) = lines("INFO")
    assert (again.__dict__["postponed"], again.__dict__["for_s"]) == (40, 400)
    up.script("zns", {"error": -133})  # the next night is a new episode
    with pytest.raises(DeferError):
        d.deliver(note(idempotency_key="night2"))
    assert len(lines("WARNING")) == 3


def test_kinds_without_a_zns_template_are_named_at_start_against_zalo_itself(
        caplog: pytest.LogCaptureFixture) -> None:
    """Sent as onestop-<kind>, Zalo refuses them (-109) and every one goes by SMS."""
    from bridge.dispatch import warn_missing_templates
    from bridge.model import KINDS
    configured = {k: f"31234{i}" for i, k in enumerate(KINDS) if k != "RESULT_READY"}
    real = Settings(zalo={"zns_templates": configured})
    # Without the link code's template no follower can link a number either.
    assert warn_missing_templates(real) == ["RESULT_READY", "LINK_CODE"]
    assert "RESULT_READY" in str(caplog.records[-1].__dict__["kinds"])
    unverified = Settings(zalo={"zns_templates": configured}, oa={"verify_shared_phone": False})
    assert warn_missing_templates(unverified) == ["RESULT_READY"]
    assert warn_missing_templates(Settings(zalo={"zns_base_url": "http://127.0.0.1:9/"})) == []


def test_a_whole_notices_price_kept_from_before_per_part_billing_is_named_at_start(
        caplog: pytest.LogCaptureFixture) -> None:
    """Older releases booked prices.sms once per notice and told per-part gateways' users
    to set ~1,800: kept after the upgrade, every SMS would count 5 times over."""
    from bridge.dispatch import warn_sms_price
    assert warn_sms_price(Settings(prices={"sms": 1820}))
    assert "price of one SMS part" in caplog.records[-1].getMessage()
    assert not warn_sms_price(Settings()) and not warn_sms_price(Settings(prices={"sms": 850}))
