"""The Zalo and SMS clients against httpx.MockTransport: wire format and error mapping."""

from __future__ import annotations

import socket

import httpx
import pytest
from dispatch_fakes import FakeClock, FakeUpstream, body

from bridge import metrics
from bridge.dispatch.http import make_client
from bridge.dispatch.quota import QuotaReading
from bridge.dispatch.sms import SmsClient
from bridge.dispatch.zalo import ZaloClient, tracking_id
from bridge.errors import (
    AuthError, BadInputError, ConfigError, DeferError, ProviderBusy, RecipientError,
    TransportError,
)
from bridge.settings import Settings

SETTINGS = Settings(zalo={"app_id": "app-1", "app_secret": "s3cret", "oa_base_url": "https://oa.test",
                          "zns_base_url": "https://zns.test", "oauth_base_url": "https://oauth.test"},
                    sms={"base_url": "https://sms.test/", "api_key": "k-1", "brandname": "MOTCUA"})


@pytest.fixture()
def up() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture()
def zalo(up: FakeUpstream) -> ZaloClient:
    clock = FakeClock()
    return ZaloClient(SETTINGS.zalo, make_client(timeout_s=2, transport=up.transport()),
                      wall=clock.wall)


@pytest.fixture()
def sms(up: FakeUpstream) -> SmsClient:
    return SmsClient(SETTINGS.sms, make_client(timeout_s=2, transport=up.transport()),
                     wall=FakeClock().wall)


def test_refresh_posts_form_with_secret_header(zalo: ZaloClient, up: FakeUpstream) -> None:
    grant = zalo.refresh("RT-0")
    assert (grant.access_token, grant.refresh_token, grant.expires_in) == ("AT-1", "RT-1", 90000.0)
    req = up.calls("oauth")[0]
    assert str(req.url) == "https://oauth.test/v4/oa/access_token"
    assert req.headers["secret_key"] == "s3cret"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=refresh_token" in req.content and b"app_id=app-1" in req.content
    with pytest.raises(ConfigError, match="-14014"):
        zalo.refresh("RT-0")  # already rotated


def test_cs_message_shape(zalo: ZaloClient, up: FakeUpstream) -> None:
    message = {"text": "Hồ sơ đã tiếp nhận", "attachment": {"type": "template", "payload": {
        "buttons": [{"title": "Tra cứu", "type": "oa.query.show", "payload": "#tracuu"}]}}}
    sent = zalo.send_cs("AT-0", "2512523625412515", message, tracking="key-1")
    assert sent.message_id.startswith("oa-") and sent.user_id == "2512523625412515"
    req = up.calls("oa")[0]
    assert req.headers["access_token"] == "AT-0" and "authorization" not in req.headers
    assert body(req) == {"recipient": {"user_id": "2512523625412515"}, "message": message,
                         "tracking_id": "key-1"}


def test_zns_shape_and_quota_strings(zalo: ZaloClient, up: FakeUpstream) -> None:
    sent = zalo.send_zns("AT-0", "84912345678", "onestop-received", {"code": "H1", "n": 5},
                         tracking="key-2")
    assert sent.msg_id.startswith("zns-") and sent.quota == QuotaReading(500, 498)
    assert body(up.calls("zns")[0]) == {"phone": "84912345678", "template_id": "onestop-received",
                                         "template_data": {"code": "H1", "n": "5"},
                                         "tracking_id": "key-2"}
    assert zalo.zns_quota("AT-0") == QuotaReading(500, 498)


def test_long_idempotency_keys_become_a_stable_tracking_id() -> None:
    long_key = "dossier-123:RECEIVED:" + "x" * 60
    assert len(tracking_id(long_key)) == 48 and tracking_id(long_key) == tracking_id(long_key)
    assert tracking_id("short") == "short"


@pytest.mark.parametrize(("reply", "expected"), [
    ({"error": -118}, RecipientError),
    ({"error": -100}, ProviderBusy),
    ({"error": -124}, AuthError),
    ({"error": -144}, DeferError),
    ({"error": -115}, ConfigError),
    ({"error": -1122}, BadInputError),
    ({"error": "-133"}, DeferError),  # a string code is still a code
    (503, TransportError),
    (502, TransportError),
    ("bad_json", TransportError),
    ({"message": "no error field"}, TransportError),
    (404, ConfigError),
    (httpx.ConnectTimeout("slow"), TransportError),
    (httpx.ReadTimeout("slow"), TransportError),
    (httpx.ConnectError("refused"), TransportError),
    (httpx.RemoteProtocolError("reset"), TransportError),
    (httpx.Response(429, headers={"Retry-After": "2"}), DeferError),
])
def test_zns_errors_map_to_classes(zalo: ZaloClient, up: FakeUpstream, reply: object,
                                   expected: type) -> None:
    up.script("zns", reply)  # type: ignore[arg-type]
    with pytest.raises(expected):
        zalo.send_zns("AT-0", "84912345678", "t", {"a": "b"}, tracking="k")


def test_zalo_error_codes_are_counted_with_bounded_labels(zalo: ZaloClient, up: FakeUpstream) -> None:
    known = metrics.zalo_errors.labels(channel="zns", code="-118")
    other = metrics.zalo_errors.labels(channel="zns", code="other")
    k0, o0 = known._value.get(), other._value.get()
    up.script("zns", {"error": -118}, {"error": -99999})
    for _ in range(2):
        with pytest.raises(RecipientError):
            zalo.send_zns("AT-0", "84912345678", "t", {"a": "b"}, tracking="k")
    assert (known._value.get() - k0, other._value.get() - o0) == (1, 1)


def test_oa_codes_use_the_oa_table(zalo: ZaloClient, up: FakeUpstream) -> None:
    up.script("oa", {"error": -230}, {"error": -216}, {"error": -100})
    with pytest.raises(RecipientError):
        zalo.send_cs("AT-0", "u", {"text": "x"})
    with pytest.raises(AuthError):
        zalo.send_cs("AT-0", "u", {"text": "x"})
    with pytest.raises(BadInputError):
        zalo.send_cs("AT-0", "u", {"text": "x"})


def test_sms_send_shape(sms: SmsClient, up: FakeUpstream) -> None:
    sent = sms.send("84912345678", "Hồ sơ H1 đã có kết quả", tracking="key-3")
    assert sent.sms_id.startswith("sms-") and sent.price == 350
    req = up.calls("sms")[0]
    assert str(req.url) == "https://sms.test/sms/send"
    assert req.headers["authorization"] == "Bearer k-1"
    assert body(req) == {"phone": "84912345678", "text": "Hồ sơ H1 đã có kết quả",
                         "brandname": "MOTCUA", "tracking_id": "key-3"}


@pytest.mark.parametrize(("reply", "expected"), [
    (httpx.Response(400, json={"error": "invalid_phone"}), RecipientError),
    (httpx.Response(400, json={"error": "text_too_long"}), BadInputError),
    (httpx.Response(401, json={"error": "unauthorized"}), ConfigError),
    (httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "rate_limited"}), DeferError),
    (500, TransportError),
    (503, TransportError),
    (httpx.Response(200, text="<html>"), TransportError),
    (httpx.ReadTimeout("slow"), TransportError),
])
def test_sms_errors(sms: SmsClient, up: FakeUpstream, reply: object, expected: type) -> None:
    up.script("sms", reply)  # type: ignore[arg-type]
    with pytest.raises(expected) as info:
        sms.send("84912345678", "x", tracking="k")
    if expected is DeferError:
        assert isinstance(info.value, DeferError)
        assert (info.value.until - FakeClock().wall()).total_seconds() == pytest.approx(3.0)


def test_a_header_value_httpx_refuses_is_not_quoted_in_the_error() -> None:
    """h11 refuses a header with a stray CR before sending, quoting it; the secret headers
    (`secret_key`, `access_token`, `Authorization`) must not travel on into logs, /readyz
    and dead letters."""
    from bridge.dispatch.http import send
    from bridge.errors import TransportError

    with socket.socket() as server:  # listening: the connection is made, the request refused
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = make_client(timeout_s=2)
        with pytest.raises(TransportError) as err:
            send(client, "POST", f"http://127.0.0.1:{server.getsockname()[1]}/v4/oa/access_token",
                 what="zalo oauth", headers={"secret_key": "AppSecret-9f8e7d\r"})
        client.close()
    assert "9f8e7d" not in str(err.value) and "stray character" in str(err.value)
