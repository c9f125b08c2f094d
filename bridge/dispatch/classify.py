"""Zalo error code → the bridge's exception class (zalo-api.md §5).

Pure and table-driven: every code of §5.1 (OA API) and §5.2 (ZNS / ZBS phone channel)
maps to one `Rule`. The same code can mean different things on the two hosts (-100 is
"attachment expired" on OA but "unknown error, retry later" on ZNS), so the tables are
per channel.

How a class is used by the dispatcher:

- TRANSIENT   → ProviderBusy: retry with backoff.
- RATE_*/NIGHT → DeferError with `until`: the per-minute limit frees up within a minute;
  daily quotas reset at local midnight; monthly ones on the 1st; night bans end at 06:00
  (Asia/Ho_Chi_Minh, the timezone Zalo never states but obviously uses).
- AUTH        → AuthError: refresh the token once, retry once.
- CONFIG      → ConfigError: billing, permissions, app set-up; a person must act.
- RECIPIENT   → RecipientError: this channel cannot reach this person; try the next one.
- BAD_INPUT   → BadInputError: payload or template is wrong; the next channel carries a
  different payload and may still work.

Per-user limits (-218, -1471, -1472) are RECIPIENT rather than RATE: they say nothing about
other recipients, and the next channel can still reach this one today.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import Enum
from typing import Literal
from zoneinfo import ZoneInfo

from bridge.errors import (
    AuthError, BadInputError, BridgeError, ConfigError, DeferError, NightWindow, ProviderBusy,
    QuotaExhausted, RecipientError,
)

log = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ZaloChannel = Literal["zalo_oa", "zns"]


class Kind(Enum):
    TRANSIENT = "transient"
    RATE_MINUTE = "rate_minute"
    RATE_DAILY = "rate_daily"
    RATE_MONTHLY = "rate_monthly"
    NIGHT = "night"
    AUTH = "auth"
    CONFIG = "config"
    RECIPIENT = "recipient"
    BAD_INPUT = "bad_input"


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    reason: str


def _rules(kind: Kind, reason: str, *codes: int) -> dict[int, Rule]:
    return {code: Rule(kind, reason) for code in codes}


T, RM, RD, RMO, N = Kind.TRANSIENT, Kind.RATE_MINUTE, Kind.RATE_DAILY, Kind.RATE_MONTHLY, Kind.NIGHT
A, C, R, B = Kind.AUTH, Kind.CONFIG, Kind.RECIPIENT, Kind.BAD_INPUT

# Codes both hosts may answer: the app-level per-minute limit and the token errors.
_COMMON: dict[int, Rule] = {
    **_rules(RM, "app reached the per-minute API limit", -32),
    **_rules(A, "access token invalid or expired", -216, -220, -124),
}

OA_RULES: dict[int, Rule] = {
    **_COMMON,
    **_rules(B, "attachment expired, re-upload", -100),
    **_rules(T, "send failed, try later", -200),
    **_rules(B, "invalid field", -201),
    **_rules(C, "OA disabled, missing or app not activated", -204, -205, -209),
    **_rules(B, "parameter exceeds allowed limit", -210),
    **_rules(RD, "feature quota used up", -211),
    **_rules(C, "app has not registered this API", -212),
    **_rules(R, "user does not follow the OA", -213),
    **_rules(T, "article still processing", -214),
    **_rules(R, "user blocked the OA", -217),
    **_rules(R, "user's receive quota used up today", -218),
    **_rules(C, "app removed or disabled", -219),
    **_rules(C, "OA verification, authorisation or tier package missing", -221, -223, -224),
    **_rules(R, "user banned or inactive", -227),
    **_rules(R, "no interaction with the OA in the last 7 days", -230, -232),
    **_rules(B, "message type invalid", -233),
    **_rules(N, "message type not sent at night", -234),
    **_rules(C, "OA type, group or asset problem", -235, -237, -238, -241),
    **_rules(B, "v2 message API is shut down (code bug)", -240),
    **_rules(C, "invalid appsecret_proof", -242),
    **_rules(R, "user restricted this message type", -244),
    **_rules(B, "content violates platform standards", -248),
    **_rules(R, "template cannot be sent by UID", -249),
    **_rules(C, "Zalo Cloud Account missing or out of money", -320, -321),
    **_rules(C, "OA is not in the group", -403),
}

ZNS_RULES: dict[int, Rule] = {
    **_COMMON,
    **_rules(T, "unknown error, retry later", -100),
    **_rules(C, "app invalid, inactive, bad secret or not linked to an OA",
             -101, -102, -103, -104, -105),
    **_rules(B, "method or message id invalid", -106, -107),
    **_rules(R, "phone number invalid", -108),
    **_rules(B, "template id invalid or not editable", -109, -1091),
    **_rules(R, "user's Zalo version unsupported", -110),
    **_rules(B, "template data invalid", -111, -112, -1121, -1122, -1123, -1124),
    **_rules(B, "button invalid", -113, -1131),
    **_rules(R, "user cannot receive ZNS", -114),
    **_rules(C, "out of ZNS quota or balance", -115),
    **_rules(B, "text invalid", -116),
    **_rules(C, "no permission for this template or feature", -117, -120, -1201, -1202),
    **_rules(R, "phone has no Zalo account", -118),
    **_rules(R, "account cannot receive messages", -119),
    **_rules(B, "request body empty, not JSON or undecodable", -121, -122, -123),
    **_rules(C, "appsecret_proof or OA id invalid", -1241, -125),
    **_rules(C, "development-mode wallet empty", -126),
    **_rules(B, "test template sent to a non-admin", -127),
    **_rules(C, "RSA key problem", -128, -129, -142, -143),
    **_rules(B, "content too long, template unapproved or parameter invalid", -130, -131, -132),
    **_rules(N, "ZNS cannot be sent at night", -133),
    **_rules(R, "user has not opted in", -134),
    **_rules(C, "OA lacks ZNS permission or is blocked", -135, -1351),
    **_rules(C, "Zalo Cloud Account not connected, charge failed or permission missing",
             -136, -137, -1381, -138),
    **_rules(R, "user refused this content or is ineligible", -139, -140, -141),
    **_rules(RD, "OA exceeded its daily ZNS quota", -144),
    **_rules(RMO, "monthly promotion quota used up", -1441),
    **_rules(R, "per-user follow-up/promotion limit reached", -1471, -1472),
    **_rules(C, "OA not allowed this content type", -145),
    **_rules(B, "template disabled for low quality", -146),
    **_rules(RD, "template daily limit exceeded", -147),
    **_rules(B, "journey token problem", -148, -149, -1491, -150),
    **_rules(B, "encryption, data-spec, file or sending_mode problem",
             -151, -152, -153, -158, -159, -160, -161, -162),
}

RULES: dict[str, dict[int, Rule]] = {"zalo_oa": OA_RULES, "zns": ZNS_RULES}
UNKNOWN = Rule(R, "unknown Zalo error code")


def rule_for(code: int, channel: ZaloChannel) -> Rule:
    return RULES[channel].get(code, UNKNOWN)


def is_known(code: int, channel: ZaloChannel) -> bool:
    return code in RULES[channel]


NIGHT_RECHECK = timedelta(minutes=10)
QUOTA_RECHECK = timedelta(minutes=15)


def classify(code: int, message: str, channel: ZaloChannel, *, now: datetime,
             night_end: time = time(6, 0)) -> BridgeError:
    """The exception for a non-zero Zalo `error`; `now` must be timezone-aware."""
    rule = rule_for(code, channel)
    if rule is UNKNOWN:
        # Treated as "this channel cannot reach this person" so the next channel still
        # gets a chance; logged because the table needs a new row.
        log.warning("unknown Zalo error code", extra={"channel": channel, "code": code,
                                                      "zalo_message": message})
    text = f"{channel} error {code}: {message or rule.reason} ({rule.reason})"
    match rule.kind:
        case Kind.TRANSIENT:
            return ProviderBusy(text, code=code)
        case Kind.RATE_MINUTE:
            return DeferError(text, until=now + timedelta(seconds=60), code=code)
        case Kind.RATE_DAILY:
            return QuotaExhausted(text, until=quota_back(now), code=code)
        case Kind.RATE_MONTHLY:
            return QuotaExhausted(text, until=next_local_month(now), code=code)
        case Kind.NIGHT:
            return NightWindow(text, until=_night_over(now, night_end), code=code)
        case Kind.AUTH:
            return AuthError(text, code=code)
        case Kind.CONFIG:
            return ConfigError(text, code=code)
        case Kind.BAD_INPUT:
            return BadInputError(text, code=code)
        case Kind.RECIPIENT:
            return RecipientError(text, code=code)
    raise AssertionError(rule.kind)  # pragma: no cover


def classify_oauth(code: int, message: str, *, now: datetime) -> BridgeError:
    """Errors of the token endpoint: only the rate limit is worth waiting for (§4, §10.3)."""
    if code == -32:
        return DeferError(f"oauth error {code}: {message}", until=now + timedelta(seconds=60),
                          code=code)
    return ConfigError(f"oauth error {code}: {message} (refresh token refused; an admin must "
                       "re-authorise the OA)", code=code)


def next_local_time(now: datetime, at: time) -> datetime:
    """The next `at` o'clock in Asia/Ho_Chi_Minh strictly after `now`."""
    local = now.astimezone(LOCAL_TZ)
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def _night_over(now: datetime, night_end: time) -> datetime:
    """When to try again after a night refusal (-133). Refused just after `night_end` by our
    clock — Zalo's a few seconds behind at 06:00, when the whole night's notices go — the
    next `night_end` would be a day away: ask again in a few minutes instead."""
    until = next_local_time(now, night_end)
    return now + NIGHT_RECHECK if until - now > timedelta(hours=12) else until


def quota_back(now: datetime) -> datetime:
    """When to try again after a used-up daily quota: at the reset, or sooner — an
    administrator may raise it (a soak: raised at 17:52, the 2,098 held notices would have
    waited for midnight). A try costs no call while the local mirror still reads zero."""
    return min(next_local_midnight(now), now + QUOTA_RECHECK)


def next_local_midnight(now: datetime) -> datetime:
    return next_local_time(now, time(0, 0))


def next_local_month(now: datetime) -> datetime:
    local = now.astimezone(LOCAL_TZ)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return local.replace(year=year, month=month, day=1, hour=0, minute=0, second=0,
                         microsecond=0)


def parse_hhmm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))
