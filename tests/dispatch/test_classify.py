"""Every Zalo code of zalo-api.md §5.1/§5.2 lands in the class the dispatcher needs."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from bridge.dispatch.outcome import result_of
from bridge.dispatch.classify import (
    LOCAL_TZ, OA_RULES, ZNS_RULES, classify, classify_oauth, next_local_midnight, next_local_time,
)
from bridge.errors import (
    AuthError, BadInputError, ConfigError, DeferError, NightWindow, ProviderBusy, QuotaExhausted,
    RecipientError,
)

# Written from the doc's tables, independently of the implementation's table.
OA_EXPECTED: dict[type, list[int]] = {
    ProviderBusy: [-200, -214],
    DeferError: [-32],
    NightWindow: [-234],
    QuotaExhausted: [-211],
    AuthError: [-216, -220],
    ConfigError: [-204, -205, -209, -212, -219, -221, -223, -224, -235, -237, -238, -241, -242,
                  -320, -321, -403],
    RecipientError: [-213, -217, -218, -227, -230, -232, -244, -249],
    BadInputError: [-100, -201, -210, -233, -240, -248],
}
ZNS_EXPECTED: dict[type, list[int]] = {
    ProviderBusy: [-100],
    DeferError: [-32],
    NightWindow: [-133],
    QuotaExhausted: [-144, -147, -1441],
    AuthError: [-124],
    ConfigError: [-101, -102, -103, -104, -105, -115, -117, -120, -1201, -1202, -1241, -125, -126,
                  -128, -129, -142, -143, -135, -1351, -136, -137, -1381, -138, -145],
    RecipientError: [-108, -110, -114, -118, -119, -134, -139, -140, -141, -1471, -1472],
    BadInputError: [-106, -107, -109, -1091, -111, -112, -1121, -1122, -1123, -1124, -113, -1131,
                    -116, -121, -122, -123, -127, -130, -131, -132, -146, -148, -149, -1491, -150,
                    -151, -152, -153, -158, -159, -160, -161, -162],
}
NOW = datetime(2026, 11, 3, 10, 15, tzinfo=LOCAL_TZ)  # a Tuesday morning in Hà Nội


def _cases(channel: str, table: dict[type, list[int]]) -> list[tuple[str, int, type]]:
    return [(channel, code, cls) for cls, codes in table.items() for code in codes]


CASES = _cases("zalo_oa", OA_EXPECTED) + _cases("zns", ZNS_EXPECTED)


@pytest.mark.parametrize(("channel", "code", "expected"), CASES,
                         ids=[f"{c}{code}" for c, code, _ in CASES])
def test_code_maps_to_class(channel: str, code: int, expected: type) -> None:
    exc = classify(code, "text from Zalo", channel, now=NOW)  # type: ignore[arg-type]
    assert type(exc) is expected
    assert exc.code == code
    assert str(code) in exc.message


def test_tables_cover_exactly_the_documented_codes() -> None:
    assert set(OA_RULES) == {c for codes in OA_EXPECTED.values() for c in codes} | {-124}
    assert set(ZNS_RULES) == {c for codes in ZNS_EXPECTED.values() for c in codes} | {-216, -220}


def test_minus_100_means_different_things_per_host() -> None:
    assert isinstance(classify(-100, "", "zalo_oa", now=NOW), BadInputError)
    assert isinstance(classify(-100, "", "zns", now=NOW), ProviderBusy)


@pytest.mark.parametrize("channel", ["zalo_oa", "zns"])
def test_unknown_code_is_permanent_for_the_channel_and_logged(
        channel: str, caplog: pytest.LogCaptureFixture) -> None:
    exc = classify(-987654, "brand new", channel, now=NOW)  # type: ignore[arg-type]
    assert isinstance(exc, RecipientError)
    assert any("unknown Zalo error code" in r.message and r.code == -987654  # type: ignore[attr-defined]
               for r in caplog.records)


def test_per_minute_limit_defers_one_window() -> None:
    exc = classify(-32, "", "zalo_oa", now=NOW)
    assert isinstance(exc, DeferError) and exc.until - NOW == timedelta(seconds=60)


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 11, 3, 10, 15, tzinfo=LOCAL_TZ), datetime(2026, 11, 4, 0, 0, tzinfo=LOCAL_TZ)),
    # 23:30 UTC on the 3rd is already 06:30 on the 4th in Hà Nội: reset at midnight of the 5th.
    (datetime(2026, 11, 3, 23, 30, tzinfo=timezone.utc),
     datetime(2026, 11, 5, 0, 0, tzinfo=LOCAL_TZ)),
    (datetime(2026, 12, 31, 23, 59, tzinfo=LOCAL_TZ), datetime(2027, 1, 1, 0, 0, tzinfo=LOCAL_TZ)),
])
def test_the_daily_quota_resets_at_local_midnight(now: datetime, expected: datetime) -> None:
    assert next_local_midnight(now) == expected


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 11, 3, 10, 15, tzinfo=LOCAL_TZ), datetime(2026, 11, 3, 10, 30, tzinfo=LOCAL_TZ)),
    (datetime(2026, 11, 3, 23, 55, tzinfo=LOCAL_TZ), datetime(2026, 11, 4, 0, 0, tzinfo=LOCAL_TZ)),
])
def test_a_used_up_daily_quota_is_tried_again_at_the_reset_or_in_15_minutes(
        now: datetime, expected: datetime) -> None:
    """Sooner than the reset: an administrator may raise the quota (a soak's 2,098 held
    notices would have waited for midnight after it was raised at 17:52)."""
    exc = classify(-144, "", "zns", now=now)
    assert isinstance(exc, DeferError) and exc.until == expected


@pytest.mark.parametrize("local_hour, expected_day", [(23, 4), (2, 3), (5, 3)])
def test_night_ban_defers_to_six_local(local_hour: int, expected_day: int) -> None:
    now = datetime(2026, 11, 3, local_hour, 10, tzinfo=LOCAL_TZ)
    for code, channel in ((-133, "zns"), (-234, "zalo_oa")):
        exc = classify(code, "", channel, now=now)  # type: ignore[arg-type]
        assert isinstance(exc, DeferError)
        assert exc.until == datetime(2026, 11, expected_day, 6, 0, tzinfo=LOCAL_TZ)


def test_night_end_is_configurable() -> None:
    now = datetime(2026, 11, 3, 23, 0, tzinfo=LOCAL_TZ)
    exc = classify(-133, "", "zns", now=now, night_end=time(7, 30))
    assert isinstance(exc, DeferError)
    assert exc.until == datetime(2026, 11, 4, 7, 30, tzinfo=LOCAL_TZ)
    assert next_local_time(datetime(2026, 11, 4, 7, 30, tzinfo=LOCAL_TZ), time(7, 30)) == \
        datetime(2026, 11, 5, 7, 30, tzinfo=LOCAL_TZ)


def test_monthly_quota_defers_to_the_first() -> None:
    exc = classify(-1441, "", "zns", now=datetime(2026, 12, 15, 9, tzinfo=LOCAL_TZ))
    assert isinstance(exc, DeferError) and exc.until == datetime(2027, 1, 1, tzinfo=LOCAL_TZ)


def test_oauth_errors_are_terminal_except_rate_limit() -> None:
    assert isinstance(classify_oauth(-14014, "Invalid refresh token", now=NOW), ConfigError)
    assert isinstance(classify_oauth(-14002, "Invalid appId", now=NOW), ConfigError)
    assert isinstance(classify_oauth(-32, "limit", now=NOW), DeferError)


@pytest.mark.parametrize("local, expected", [
    (datetime(2026, 11, 3, 6, 0, 3), datetime(2026, 11, 3, 6, 10, 3)),     # Zalo's clock behind
    (datetime(2026, 11, 3, 14, 0), datetime(2026, 11, 3, 14, 10)),          # a window we don't know
    (datetime(2026, 11, 3, 5, 59, 50), datetime(2026, 11, 3, 6, 0)),        # still night here
])
def test_a_night_refusal_by_day_is_asked_again_in_minutes_not_a_day(local: datetime,
                                                                     expected: datetime) -> None:
    """A -133 just after 06:00 (the whole night's notices go then) once held each notice,
    and every later one of its dossier, until 06:00 the next day."""
    exc = classify(-133, "", "zns", now=local.replace(tzinfo=LOCAL_TZ))
    assert isinstance(exc, DeferError)
    assert exc.until == expected.replace(tzinfo=LOCAL_TZ)


def test_a_night_refusal_is_its_own_attempt_result() -> None:
    """Not rate_limited: the error-ratio alert leaves it out (it fired every night)."""
    now = datetime(2026, 11, 3, 23, 0, tzinfo=LOCAL_TZ)
    assert result_of(classify(-133, "", "zns", now=now)) == "night"
    assert result_of(classify(-234, "", "zalo_oa", now=now)) == "night"
    assert result_of(classify(-32, "", "zns", now=now)) == "rate_limited"
    assert result_of(classify(-144, "", "zns", now=now)) == "rate_limited"
