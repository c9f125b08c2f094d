"""Zalo/SMS sandbox: one aiohttp server imitating Zalo's three hosts and an SMS gateway.

It is the only stand-in for Zalo in integration tests and the demo. Point the OA, ZNS and
OAuth base URLs and the SMS gateway URL at the sandbox's base URL. Facts come from
``docs/zalo-api.md``. Start it with ``run_in_thread(...)`` (alias ``serve``), which returns an
object with ``.url`` and ``.stop()``, or ``await start(...)`` inside a running loop, or run
``onestop-bridge sandbox --port P`` (see ``bridge.sandbox.cli.main``).

Zalo conventions
    The ``access_token`` header is required. Zalo paths answer HTTP 200 with
    ``{"error", "message", "data"}``, and ``data`` appears only when error is 0. Every
    OA and ZNS answer carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remain``. Ids are
    strings, and times are epoch-ms strings.
    One sliding 60 s window covers every OA and ZNS call (not OAuth, SMS or /sandbox). It
    admits ``rate_limit_per_minute`` calls and answers -32 to the rest. A rejected call is
    not admitted.
    Token errors: an unknown or missing token gives -216 on OA paths and -124 on ZNS
    paths. An expired token gives -220 on both (zalo-api.md §11).

OA host
    ``POST /v3.0/oa/message/cs``: ``{"recipient":{"user_id"},"message":{text | text+attachment},
    "tracking_id"?}``. Errors: -201 for a bad shape; -210 for text over 2000 characters or
    more than 5 buttons; a scripted ``users.<id>.oa`` fault; -213 when the user is not a
    follower; -230 when the last interaction is more than 7 days old. Success data is
    ``{message_id, user_id, sent_time, quota{quota_type}}``.
    ``POST /v3.0/oa/message/template`` (ZBS by UID): ``{user_id, template_id, template_data,
    tracking_id?}``. It validates the template like ZNS does. Errors: a scripted fault,
    -213, and -234 in the night window. It does not use up the ZNS quota.
    ``GET /v3.0/oa/user/detail?data={"user_id":…}`` answers -213 for a non-follower. It
    includes ``shared_info.phone`` once the user has shared a phone.
    ``POST /v3.0/oa/message/transaction`` and ``/promotion`` answer -209 because those
    products were discontinued on 2026-03-01. ``POST /v2.0/oa/message`` answers -240.

ZNS host
    ``POST /message/template``: ``{phone, template_id, template_data, tracking_id?}``. Checks,
    in order: -121/-122 for the body; -108 unless the phone is ``84`` + 9 digits; -109 when
    ``strict_templates`` is on and the template is not registered; -111/-112 for template
    data; -1124 for a value that is not a string; -1122 for a missing required parameter;
    -1121 for a parameter over maxLength; -132 for a tracking_id over 48 characters; a
    scripted ``phones.<phone>.zns`` fault; -118 when ``has_zalo`` is false; -133 in the
    night window; -144 when the daily quota is used up. Success data is
    ``{msg_id, sent_time, sending_mode, quota{dailyQuota, remainingQuota}}`` with string
    values. ``GET /message/quota`` gives numbers. ``GET /message/status?message_id=``
    gives status 1 once delivered, 0 before that, and -1 when unknown. ``GET
    /template/info/v2?template_id=`` gives the registered listParams.

OAuth host
    ``POST /v4/oa/access_token`` takes a form body ``grant_type=refresh_token&refresh_token&
    app_id`` and the header ``secret_key``. Success is ``{"access_token","refresh_token",
    "expires_in":"<s>"}``. Each refresh token works once and is replaced by a new one.
    Errors: ``{"error","error_name","error_reason","ref_doc"}`` with -14002 for a wrong
    app_id, -14004 for a wrong secret_key, -14001 for a grant_type other than
    refresh_token, and -14014 for an unknown or reused refresh token.

SMS gateway (our own contract)
    ``POST /sms/send`` takes JSON ``{"phone":"84…","text":"…","brandname":"…","tracking_id":"…"}``
    and the header ``Authorization: Bearer <sms_api_key>`` (default ``sandbox-sms-key``).
    Success is 200 ``{"sms_id":"sms-…","status":"accepted","parts":2,"price":700}``: a
    long text is billed per part, ``sms_price`` each (Unicode text: 70 characters in one
    SMS, 67 per part beyond; GSM-7 text: 160, 153). Errors:
    401 ``{"error":"unauthorized"}``; 429 ``{"error":"rate_limited"}`` with ``Retry-After``
    (seconds) above ``sms_rate_per_second``, checked in a sliding 1 s window; 400
    ``{"error":"invalid_phone"|"invalid_text"|"invalid_request"}``. Scripted
    ``phones.<phone>.sms`` items come after validation. An int there is an HTTP status
    with ``{"error":…}``.

Fault items (scenario ``phones.<84…>.zns|sms``, ``users.<id>.oa``)
    Each item answers one call in turn. After the list runs out, normal behaviour returns.
    An int is a Zalo error code (an HTTP status for sms). ``"http_500"``, ``"http_502"``
    and ``"http_503"`` give an HTML error page. ``"bad_json"`` gives 200 with a truncated
    JSON body. ``"timeout"`` holds the request for ``timeout_hold_s`` (default 30), then
    drops the connection with no answer. ``"slow:<ms>"`` delays, then carries on normally.
    A faulted call records no message.

Webhooks
    Each accepted ZNS send triggers a ZNS ``user_received_message`` ``delivery_delay_ms``
    later (default 50). It carries ``message.tracking_id`` and ``delivery_time`` and the
    header ``X-ZEvent-Server: ZNS``. Each accepted OA send triggers an OA-shaped
    ``user_received_message``, with the OA as sender and the user as recipient. Every event
    is signed with ``X-ZEvent-Signature: mac=sha256(app_id+body+timestamp+oa_secret_key)``
    (see ``signing.py``). A non-200 reply, or a reply slower than ``webhook_timeout_s``
    (2 s), is retried after each delay in ``webhook_retry_delays_s`` with ``num_retry: n``.
    Nothing is sent when no webhook URL is set. ``delivery_webhooks: false`` turns the
    receipts off.

Control endpoints (``/sandbox/…``)
    ``GET messages?channel=&phone=&user_id=&tracking_id=&after=<seq>&limit=``
    ``POST reset`` clears messages, stats, tokens, followers and cursors and keeps the
    scenario. ``GET|PUT scenario`` (PUT replaces it). ``POST expire-tokens``. ``GET stats``.
    ``GET refresh-token``. ``POST user-event`` takes ``{"event_name":"follow"|"unfollow"|
    "user_send_text"|"user_submit_info","user_id","text"?,"phone"?,"name"?,"info"?}``.
    ``GET webhooks`` returns the delivery log. ``PUT webhook`` takes ``{"url"}``.
    ``GET health``.
"""

from __future__ import annotations

from bridge.sandbox.scenario import Scenario, load_scenario
from bridge.sandbox.server import AsyncSandbox, SandboxHandle, run_in_thread, serve, serve_forever, start
from bridge.sandbox.signing import zalo_signature

__all__ = [
    "AsyncSandbox",
    "SandboxHandle",
    "Scenario",
    "load_scenario",
    "run_in_thread",
    "serve",
    "serve_forever",
    "start",
    "zalo_signature",
]
