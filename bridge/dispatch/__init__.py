"""The dispatcher: deliver a Notification through Zalo OA, ZNS or SMS (design.md §5).

Public API::

    build_dispatcher(settings, *, followers=None, token_store=None, transport=None) -> Dispatcher
    Dispatcher.deliver(n: Notification) -> DeliveryOutcome      # raises RetryableError/DeferError
    Dispatcher.send_oa_message(user_id, message) -> str          # citizen side
    sandbox_settings(settings, url) -> Settings                 # `run --sandbox URL`

Modules: classify (Zalo code → error class), ratelimit and quota (upstream limits),
tokens (access-token lifecycle), http/zalo/sms (clients), channels (one send per channel),
retry (in-process retry policy), outcome (result types), dispatcher (the channel plan).
"""

from __future__ import annotations

import logging

import httpx
from pydantic import SecretStr

from bridge.dispatch.channels import SmsChannel, ZaloChannels
from bridge.dispatch.classify import parse_hhmm
from bridge.dispatch.dispatcher import LINK_CODE, Dispatcher, FollowerLookup, zns_template_id
from bridge.dispatch.http import ThreadClients
from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.dispatch.ratelimit import RateLimiter
from bridge.dispatch.sms import SmsClient
from bridge.dispatch.tokens import (
    FileTokenStore, MemoryTokenStore, TokenManager, TokenState, TokenStore,
)
from bridge.dispatch.zalo import ZaloClient
from bridge.model import KINDS
from bridge.settings import Settings, ZaloSettings

__all__ = [
    "Attempt", "DeliveryOutcome", "Dispatcher", "FileTokenStore", "FollowerLookup",
    "MemoryTokenStore", "TokenManager", "TokenState", "TokenStore", "build_dispatcher",
    "sandbox_settings", "zns_template_id",
]

log = logging.getLogger(__name__)
ZNS_PRODUCTION_URL = ZaloSettings.model_fields["zns_base_url"].default.rstrip("/")
SANDBOX_APP_ID = "sandbox-app"
SANDBOX_APP_SECRET = "sandbox-secret"
SANDBOX_REFRESH_TOKEN = "sandbox-refresh-0"
SANDBOX_SMS_KEY = "sandbox-sms-key"
SANDBOX_OA_SECRET_KEY = "sandbox-oa-secret"
SANDBOX_OA_ID = "1032900368640139458"


def build_dispatcher(settings: Settings, *, followers: FollowerLookup | None = None,
                     token_store: TokenStore | None = None,
                     transport: httpx.BaseTransport | None = None,
                     max_rate_wait_s: float = 10.0) -> Dispatcher:
    """Wire clients, token manager, limiters and quota from the settings.

    `token_store` should be durable in production (the ledger's SQL store); the default
    in-memory store loses the rotated refresh token on exit.
    """
    zcfg, dcfg = settings.zalo, settings.dispatch
    client = ThreadClients(timeout_s=zcfg.timeout_s, transport=transport)
    zalo_client = ZaloClient(zcfg, client, night_end=parse_hhmm(dcfg.night_end))
    tokens = TokenManager(token_store or MemoryTokenStore(), zalo_client.refresh,
                          initial_refresh_token=zcfg.refresh_token.get_secret_value(),
                          refresh_ahead_s=zcfg.refresh_ahead_s)
    app_limiter = RateLimiter.per_minute("zalo_app", zcfg.oa_rate_per_minute,
                                         max_wait_s=max_rate_wait_s)
    sms_limiter = RateLimiter.per_second("sms", settings.sms.rate_per_second,
                                         max_wait_s=max_rate_wait_s)
    zalo = ZaloChannels(zalo_client, tokens, app_limiter)
    sms = SmsChannel(SmsClient(settings.sms, client), sms_limiter)
    warn_missing_templates(settings)
    warn_sms_price(settings)
    return Dispatcher(settings, zalo, sms, followers=followers, on_close=client.close)


def warn_missing_templates(settings: Settings) -> list[str]:
    """Against Zalo itself, kinds without an approved template id in `[zalo.zns_templates]`
    would be sent as `onestop-<kind>`, which Zalo refuses (-109): they all go by SMS
    (or to the DLQ with SMS off), with nothing louder than the error ratio to say so; and
    without LINK_CODE no follower can link a number (`oa.verify_shared_phone`)."""
    if settings.zalo.zns_base_url.rstrip("/") != ZNS_PRODUCTION_URL:
        return []  # the sandbox knows the default ids
    used = [*KINDS, LINK_CODE] if settings.oa.verify_shared_phone else list(KINDS)
    missing = [k for k in used if k not in settings.zalo.zns_templates]
    if missing:
        log.warning("no ZNS template configured for some notice kinds; Zalo will refuse them "
                    "(-109) and they go by SMS: add their approved ids to [zalo.zns_templates]",
                    extra={"kinds": missing})
    return missing


# Dearer than any carrier's price for one SMS (domain.md: 320–820, banking 1,000 đồng).
SMS_PART_PRICE_MAX = 1000


def warn_sms_price(settings: Settings) -> bool:
    """`prices.sms` is one SMS part's price: an SMS costs its parts × it. Releases before
    ledger v6 booked it once per notice and told operators of per-part gateways to set a
    whole notice's price (~1,800 đồng): kept after an upgrade, every SMS cost and saving
    would be counted several times over."""
    price = settings.prices.sms
    if price <= SMS_PART_PRICE_MAX:
        return False
    log.warning("prices.sms is the price of one SMS part (70 characters with diacritics), "
                "not of a whole notice: %d đồng looks like a notice's price; set your "
                "gateway's price per part", price, extra={"prices_sms": price})
    return True


def sandbox_settings(settings: Settings, url: str) -> Settings:
    """Point every upstream at one sandbox URL and fill in its default credentials."""
    base = url.rstrip("/")
    z, s = settings.zalo, settings.sms
    zalo = z.model_copy(update={
        "oa_base_url": base, "zns_base_url": base, "oauth_base_url": base,
        "app_id": z.app_id or SANDBOX_APP_ID,
        "app_secret": z.app_secret if z.app_secret.get_secret_value()
        else SecretStr(SANDBOX_APP_SECRET),
        "refresh_token": z.refresh_token if z.refresh_token.get_secret_value()
        else SecretStr(SANDBOX_REFRESH_TOKEN),
        "oa_secret_key": z.oa_secret_key if z.oa_secret_key.get_secret_value()
        else SecretStr(SANDBOX_OA_SECRET_KEY),
    })
    oa = settings.oa
    if oa.oa_id == type(oa).model_fields["oa_id"].default:
        oa = oa.model_copy(update={"oa_id": SANDBOX_OA_ID})
    sms = s.model_copy(update={
        "base_url": base,
        "api_key": s.api_key if s.api_key.get_secret_value() else SecretStr(SANDBOX_SMS_KEY),
    })
    return settings.model_copy(update={"zalo": zalo, "sms": sms, "oa": oa})
