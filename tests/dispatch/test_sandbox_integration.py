"""The dispatcher against the real Zalo/SMS sandbox, in-process on a free port.

Each test states its scenario; what the sandbox recorded (messages, stats, tokens) is the
evidence, as a citizen's phone would be.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import metrics
from bridge.dispatch import (
    DeliveryOutcome, Dispatcher, FileTokenStore, MemoryTokenStore, TokenState, build_dispatcher,
    sandbox_settings,
)
from bridge.dispatch.classify import LOCAL_TZ, QUOTA_RECHECK
from bridge.dispatch.tokens import TokenPersistError
from bridge.errors import DeferError, RetryableError
from bridge.model import Notification
from bridge.sandbox import SandboxHandle, run_in_thread
from bridge.settings import Settings
from events import present

PHONE = "84911000001"
NO_ZALO = "84911000002"


class Sandbox:
    def __init__(self, handle: SandboxHandle) -> None:
        self.handle = handle
        self.url = handle.url
        self.http = httpx.Client(base_url=handle.url, timeout=10)

    def use(self, scenario: dict[str, Any]) -> None:
        self.http.put("/sandbox/scenario", json=scenario).raise_for_status()
        self.http.post("/sandbox/reset").raise_for_status()

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        return self.http.get("/sandbox/messages", params=filters).json()

    def stats(self) -> dict[str, Any]:
        return self.http.get("/sandbox/stats").json()

    def current_refresh_token(self) -> str:
        return self.http.get("/sandbox/refresh-token").json()["refresh_token"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    handle = run_in_thread(scenario={})
    box = Sandbox(handle)
    yield box
    box.http.close()
    handle.stop()


class Followers:
    def __init__(self, links: dict[str, str]) -> None:
        self.links = links

    def user_for_phone(self, phone: str) -> str | None:
        return self.links.get(phone)


Make = Callable[..., Dispatcher]


@pytest.fixture()
def make(sandbox: Sandbox) -> Iterator[Make]:
    built: list[Dispatcher] = []

    def factory(*, followers: dict[str, str] | None = None, token_store: Any = None,
                rate: int = 4000, max_rate_wait_s: float = 10.0, **sections: Any) -> Dispatcher:
        dispatch = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, **sections.pop("dispatch", {})}
        settings = sandbox_settings(Settings(
            zalo={"oa_rate_per_minute": rate, "timeout_s": 0.5, **sections.pop("zalo", {})},
            dispatch=dispatch, **sections), sandbox.url)
        d = build_dispatcher(settings, followers=Followers(followers or {}),
                             token_store=token_store or MemoryTokenStore(),
                             max_rate_wait_s=max_rate_wait_s)
        built.append(d)
        return d

    yield factory
    for d in built:
        d.close()


def note(n: int = 1, phone: str | None = PHONE, kind: str = "RECEIVED") -> Notification:
    return Notification(
        dossier_code=f"H12.34-261103-{n:04d}", dossier_id=n, kind=kind, phone=phone,
        text=f"Hồ sơ H12.34-261103-{n:04d} đã được tiếp nhận.",
        template_data={"ma_ho_so": f"H12.34-261103-{n:04d}"}, idempotency_key=f"{n}:{kind}:v1",
        event_id=f"pg:{n}:0/1", source_ts_ms=None, template_version="v1")


def value(metric: Any, **labels: str) -> float:
    return (metric.labels(**labels) if labels else metric)._value.get()


def test_a_value_over_the_templates_max_length_is_cut_not_refused(sandbox: Sandbox,
                                                                  make: Make) -> None:
    """Over maxLength Zalo refuses the whole message (-1121, permanent): a long procedure
    name sent the notice by SMS at several times the price, or to the DLQ."""
    sandbox.use({"templates": {"onestop-received": {"ma_ho_so": {"maxLength": 30},
                                                    "ten_thu_tuc": {"maxLength": 40}}}})
    d = make()
    long_name = "Cấp giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở lần đầu"
    n = note(7)
    n.template_data["ten_thu_tuc"] = long_name
    assert d.deliver(n).channel == "zns"
    [sent] = sandbox.messages()
    assert sent["template_data"]["ten_thu_tuc"] == "Cấp giấy chứng nhận quyền sử dụng đất…"
    assert len(sent["template_data"]["ten_thu_tuc"]) <= 40
    assert sent["template_data"]["ma_ho_so"] == n.template_data["ma_ho_so"]  # within its limit


def test_no_zalo_account_falls_back_to_sms(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"phones": {NO_ZALO: {"zns": [-118]}}})
    out = make().deliver(note(phone=NO_ZALO))
    assert (out.status, out.channel, out.price_vnd) == ("sent", "sms", 350)
    [sms] = sandbox.messages(tracking_id="1:RECEIVED:v1")
    assert sms["channel"] == "sms" and sms["phone"] == NO_ZALO and "H12.34" in sms["text"]
    assert sms["brandname"] == "MOTCUA"


def test_unknown_error_twice_then_zns_succeeds(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"phones": {PHONE: {"zns": [-100, -100]}}})
    out = make().deliver(note())
    assert (out.status, out.channel) == ("sent", "zns")
    assert [(a.result, a.error_code) for a in out.attempts] == [
        ("retryable", -100), ("retryable", -100), ("ok", None)]
    assert [m["channel"] for m in sandbox.messages(tracking_id="1:RECEIVED:v1")] == ["zns"]


def test_transport_faults_are_retried(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"timeout_hold_s": 2.0, "phones": {PHONE: {"zns": ["http_503", "timeout"]},
                                                  NO_ZALO: {"zns": [-118], "sms": [502, "bad_json"]}}})
    d = make(dispatch={"attempts": 3})
    out = d.deliver(note())
    assert out.channel == "zns" and [a.result for a in out.attempts] == ["retryable"] * 2 + ["ok"]
    out = d.deliver(note(2, phone=NO_ZALO))
    assert out.channel == "sms" and [a.result for a in out.attempts] == [
        "unreachable", "retryable", "retryable", "ok"]
    assert len(sandbox.messages(channel="sms")) == 1 and len(sandbox.messages(channel="zns")) == 1


def test_persistent_outage_goes_back_to_the_caller(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"phones": {PHONE: {"zns": ["http_502", "http_503", "http_500"]}}})
    with pytest.raises(RetryableError) as info:
        make().deliver(note())
    assert len(info.value.attempts) == 3  # type: ignore[attr-defined]
    assert sandbox.messages() == []  # not silently moved to SMS


def test_expired_token_mid_stream_refreshes_once_and_loses_nothing(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"followers": {"u-1": {"phone": "84911000009"}}})
    d = make(followers={"84911000009": "u-1"})
    outcomes = [d.deliver(note(i)) for i in range(1, 6)]
    sandbox.http.post("/sandbox/expire-tokens").raise_for_status()
    outcomes += [d.deliver(note(i, phone="84911000009" if i % 2 else PHONE)) for i in range(6, 12)]
    assert all(o.status == "sent" for o in outcomes)
    assert sandbox.stats()["tokens_issued"] == 2
    auth = [a for o in outcomes for a in o.attempts if a.result == "auth"]
    assert len(auth) == 1 and auth[0].error_code in (-124, -220)
    keys = {m["tracking_id"] for m in sandbox.messages()}
    assert keys == {f"{i}:RECEIVED:v1" for i in range(1, 12)}  # each exactly once
    assert len(sandbox.messages()) == 11


def test_daily_quota_defers_until_the_reset_or_a_recheck(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"zns_daily_quota": 2})
    d = make()
    assert [d.deliver(note(i)).channel for i in (1, 2)] == ["zns", "zns"]
    with pytest.raises(DeferError) as info:  # refused locally: the mirror knows it is empty
        d.deliver(note(3))
    wait = info.value.until - datetime.now(timezone.utc)  # the reset, or a recheck sooner
    assert timedelta(0) < wait <= QUOTA_RECHECK
    assert sandbox.stats()["errors_per_code"].get("-144") is None
    assert value(metrics.zns_quota_remaining) == 0 and value(metrics.zns_quota_daily) == 2
    # And when Zalo says -144 first (another sender used the quota), the same deferral.
    sandbox.use({"phones": {PHONE: {"zns": [-144]}}})
    with pytest.raises(DeferError):
        make().deliver(note(4))
    assert not sandbox.messages(channel="sms")


def test_night_ban_defers_to_the_nights_end_and_does_not_send_sms(sandbox: Sandbox,
                                                                  make: Make) -> None:
    # The night ends an hour from now, whatever the hour this runs at (at 06:00 by default:
    # by day a refusal is asked again in minutes, not at tomorrow's 06:00).
    end = (datetime.now(LOCAL_TZ) + timedelta(hours=1)).strftime("%H:%M")
    sandbox.use({"night_window": "always"})
    with pytest.raises(DeferError) as info:
        make(dispatch={"night_end": end}).deliver(note())
    until = info.value.until.astimezone(LOCAL_TZ)
    assert until.strftime("%H:%M") == end and info.value.code == -133
    assert sandbox.messages() == []


def test_costs_and_savings(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"followers": {"u-7": {"phone": "84911000007"}},
                 "phones": {NO_ZALO: {"has_zalo": False}}})
    d = make(followers={"84911000007": "u-7"})
    cost = {c: value(metrics.cost_vnd, channel=c) for c in ("zalo_oa", "zns", "sms")}
    saved = value(metrics.sms_savings_vnd)
    channels = [d.deliver(note(i, phone=p)).channel
                for i, p in ((1, "84911000007"), (2, PHONE), (3, NO_ZALO))]
    assert channels == ["zalo_oa", "zns", "sms"]
    assert {c: value(metrics.cost_vnd, channel=c) - cost[c] for c in cost} == \
        {"zalo_oa": 0, "zns": 150, "sms": 350}
    assert value(metrics.sms_savings_vnd) - saved == 350 + 200
    assert sandbox.messages(channel="zalo_oa")[0]["user_id"] == "u-7"


def test_stale_follower_falls_to_zns(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"followers": {"u-8": {"phone": PHONE, "last_interaction_days_ago": 9}}})
    out = make(followers={PHONE: "u-8"}).deliver(note())
    assert out.channel == "zns" and out.attempts[0].error_code == -230


def test_per_minute_limit_is_never_exceeded(sandbox: Sandbox, make: Make) -> None:
    """8 threads push 40 notifications at a 30/min upstream: no -32, no 31st call in 60 s."""
    sandbox.use({"rate_limit_per_minute": 30, "followers": {"u-1": {"phone": "84911000009"}}})
    d = make(rate=30, followers={"84911000009": "u-1"})
    results: list[DeliveryOutcome | DeferError] = []
    lock = threading.Lock()
    queue = list(range(1, 41))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            try:
                out: DeliveryOutcome | DeferError = d.deliver(
                    note(i, phone="84911000009" if i % 3 == 0 else PHONE))
            except DeferError as exc:
                out = exc
            with lock:
                results.append(out)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stats = sandbox.stats()
    assert stats["rate_limit_rejections"] == 0 and "-32" not in stats["errors_per_code"]
    assert stats["max_requests_per_60s"] <= 30
    sent = [r for r in results if isinstance(r, DeliveryOutcome)]
    deferred = [r for r in results if isinstance(r, DeferError)]
    assert len(results) == 40 and len(sent) + len(deferred) == 40
    # 29 permits (30 minus the safety margin), one spent on reading the ZNS quota and one on
    # the template's parameter limits.
    assert len(sent) == 27 == len(sandbox.messages())
    assert all(50 < (e.until - e.until.now(LOCAL_TZ)).total_seconds() <= 62 for e in deferred)


@pytest.mark.slow
def test_per_minute_limit_holds_across_windows(sandbox: Sandbox, make: Make) -> None:
    """Long waits allowed: 25 sends at 20/min need a second window; the server never sees 21."""
    sandbox.use({"rate_limit_per_minute": 20})
    d = make(rate=20, max_rate_wait_s=150)
    errors: list[BaseException] = []

    def worker(ids: list[int]) -> None:
        for i in ids:
            try:
                d.deliver(note(i))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(list(range(k, 26, 4)),)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(200)
    stats = sandbox.stats()
    assert errors == [] and len(sandbox.messages()) == 25
    assert stats["rate_limit_rejections"] == 0 and stats["max_requests_per_60s"] <= 20


class FlakyFileStore(FileTokenStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail = False

    def save(self, state: TokenState) -> None:
        if self.fail:
            raise OSError("disk full")
        super().save(state)


def test_rotated_token_is_saved_before_it_is_used(sandbox: Sandbox, make: Make, tmp_path: Path) -> None:
    sandbox.use({})
    store = FlakyFileStore(tmp_path / "token.json")
    store.fail = True
    d = make(token_store=store)
    with pytest.raises(TokenPersistError):
        d.deliver(note())
    stats = sandbox.stats()
    # Zalo rotated once; the new access token was never presented to it.
    assert stats["tokens_issued"] == 1 and stats["requests_per_path"].get("/message/template") is None
    assert store.load() is None
    store.fail = False
    assert d.deliver(note()).channel == "zns"
    assert sandbox.stats()["tokens_issued"] == 1  # the pending pair was used, no second rotation
    saved = store.load()
    assert saved is not None and saved.refresh_token == sandbox.current_refresh_token()

    # A crash now loses nothing: a new process with the same file keeps working, and its
    # next refresh spends the saved (live) refresh token.
    d.close()
    sandbox.http.post("/sandbox/expire-tokens").raise_for_status()
    again = make(token_store=FileTokenStore(tmp_path / "token.json"))
    assert again.deliver(note(2)).channel == "zns"
    assert sandbox.stats()["tokens_issued"] == 2
    saved = present(FileTokenStore(tmp_path / "token.json").load())
    assert saved.refresh_token == sandbox.current_refresh_token()


def test_send_oa_message_with_request_user_info(sandbox: Sandbox, make: Make) -> None:
    sandbox.use({"followers": {"u-5": {}}})
    message = {"text": "Vui lòng chia sẻ số điện thoại", "attachment": {"type": "template", "payload": {
        "template_type": "request_user_info", "elements": [{
            "title": "Nhận thông báo hồ sơ", "subtitle": "Chia sẻ số điện thoại với Trung tâm",
            "image_url": "https://example.invalid/logo.png"}]}}}
    message_id = make().send_oa_message("u-5", message, tracking="consent:u-5")
    [sent] = sandbox.messages(user_id="u-5")
    assert sent["message_id"] == message_id and sent["message_type"] == "request_user_info"
    assert sent["tracking_id"] == "consent:u-5"
