"""The sandbox scenario: what the fake Zalo/SMS upstream does, loaded from JSON.

Every key is optional; an empty object ``{}`` is the default, well-behaved upstream.
Scripted faults (``phones.<84…>.zns|sms`` and ``users.<id>.oa``) are answered to the
successive calls on that channel for that recipient, then the channel succeeds again.
A fault item is an int (a Zalo error code; for ``sms`` an HTTP status) or one of the strings
``"timeout"``, ``"http_<status>"`` (e.g. ``"http_503"``), ``"slow:<ms>"`` or ``"bad_json"``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

FaultItem = Union[int, str]

_FAULT_STRING = re.compile(r"^(timeout|bad_json|http_[1-5]\d\d|slow:\d+(\.\d+)?)$")


def _check_faults(items: list[FaultItem]) -> list[FaultItem]:
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"fault item must be an int or a string, got {item!r}")
        if isinstance(item, str) and not _FAULT_STRING.match(item):
            raise ValueError(
                f"unknown fault {item!r}: use a Zalo code, 'timeout', 'http_5xx', 'slow:<ms>' or 'bad_json'"
            )
    return items


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneScript(_Strict):
    zns: list[FaultItem] = []
    sms: list[FaultItem] = []
    # False: this number has no Zalo account, every ZNS send answers -118.
    has_zalo: bool = True

    _faults = field_validator("zns", "sms")(_check_faults)


class UserScript(_Strict):
    oa: list[FaultItem] = []

    _faults = field_validator("oa")(_check_faults)


class FollowerSpec(_Strict):
    phone: str | None = None  # shared with the OA (appears in user/detail shared_info)
    last_interaction_days_ago: float = 0.0
    display_name: str = "Người dùng Zalo"
    is_follower: bool = True


class TemplateParam(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    max_length: int | None = Field(default=None, alias="maxLength")
    min_length: int | None = Field(default=None, alias="minLength")
    require: bool = False


class Scenario(_Strict):
    phones: dict[str, PhoneScript] = {}
    users: dict[str, UserScript] = {}
    followers: dict[str, FollowerSpec] = {}
    # True: any user id not listed in `followers` is a follower who interacted just now
    # (lets a benchmark send OA messages to arbitrary ids without listing them).
    implicit_followers: bool = False
    templates: dict[str, dict[str, TemplateParam]] = {}
    strict_templates: bool = False
    rate_limit_per_minute: int = Field(default=4000, ge=0)
    zns_daily_quota: int = Field(default=100_000, ge=0)
    token_ttl_s: float = Field(default=90_000.0, gt=0)
    latency_ms: float = Field(default=0.0, ge=0)
    night_window: Literal["off", "always", "real"] = "off"
    refresh_token: str = "sandbox-refresh-0"
    app_id: str = "sandbox-app"
    app_secret: str = "sandbox-secret"
    oa_secret_key: str = "sandbox-oa-secret"
    oa_id: str = "1032900368640139458"
    webhook_url: str | None = None
    delivery_webhooks: bool = True
    delivery_delay_ms: float = Field(default=50.0, ge=0)
    webhook_retry_delays_s: list[float] = [30.0, 300.0, 900.0, 1800.0, 3600.0]
    webhook_timeout_s: float = Field(default=2.0, gt=0)
    timeout_hold_s: float = Field(default=30.0, ge=0)
    sms_api_key: str = "sandbox-sms-key"
    sms_rate_per_second: float = Field(default=100.0, gt=0)
    sms_price: int = 350


def load_scenario(source: str | Path | dict[str, Any] | Scenario | None) -> Scenario:
    """A Scenario from a model, a dict, a JSON file path, or None (defaults)."""
    if source is None:
        return Scenario()
    if isinstance(source, Scenario):
        return source
    if isinstance(source, dict):
        return Scenario.model_validate(source)
    return Scenario.model_validate(json.loads(Path(source).read_text(encoding="utf-8")))


def scenario_json(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the JSON a user would write (camelCase template keys included)."""
    return scenario.model_dump(mode="json", by_alias=True, exclude_none=False)
