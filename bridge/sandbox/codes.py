"""Error codes and the messages Zalo attaches to them (zalo-api.md §4, §5).

The OA host and the ZNS host use overlapping numbers with different meanings (-100 is
"attachment expired" on the OA host, "unknown error" on the ZNS host), so each host has
its own table.  Codes not listed get a generic text; scenarios may script any int.
"""

from __future__ import annotations

from typing import Literal

Host = Literal["oa", "zns"]

OA_MESSAGES: dict[int, str] = {
    0: "Success",
    -32: "Your application reached limit call api",
    -100: "attachment_id was expired",
    -200: "Send message failed",
    -201: "Parameter is invalid!",
    -204: "Offical Account is disable",
    -209: "Not supported this api",
    -210: "Parameter exceeds allowable limit",
    -211: "Out of quota",
    -213: "User has not followed OA",
    -216: "Access token is invalid",
    -217: "User has blocked invitation from OA",
    -218: "Out of quota receive",
    -220: "access_token is expired or removed",
    -224: "The OA needs to upgrade OA Tier Package to use this feature",
    -227: "User is banned or has been inactive for more than 45 days",
    -230: "User has not interacted with the OA in the past 7 days",
    -232: "User has not interacted with the OA, or the last interaction has expired",
    -233: "message type is invalid or not support",
    -234: "This message cannot be sent at night (10:00PM - 6:00AM)",
    -240: "MessageV2 API has been shut down, please switch to MessageV3",
    -244: "User has restricted this message type from your OA",
    -249: "Template does not support send via UID",
}

ZNS_MESSAGES: dict[int, str] = {
    0: "Success",
    -32: "Your application reached limit call api",
    -100: "Unknown error, retry later",
    -107: "Message ID invalid",
    -108: "Phone number invalid",
    -109: "Template ID invalid",
    -111: "Template data empty",
    -112: "Template data invalid",
    -1121: "Parameter exceeds max length",
    -1122: "Missing parameter",
    -1124: "Parameter has invalid format",
    -114: "User cannot receive the message",
    -115: "Out of quota",
    -118: "Zalo account not existed",
    -119: "Account can not receive message",
    -121: "Body is empty",
    -122: "Body is not a valid JSON",
    -124: "Access token invalid",
    -131: "Template has not been approved",
    -132: "Parameter invalid",
    -133: "Cannot send ZNS at night (22:00 - 06:00)",
    -139: "User refused to receive this type of message",
    -141: "User refused to receive ZNS from this OA",
    -144: "OA has exceeded the daily ZNS quota",
    -147: "Template has exceeded its daily limit",
}

# OAuth host (oauth.zaloapp.com/v4/oa/access_token): its own -14xxx family.  Only -14002 is
# attested; -14001 and -14004 are this sandbox's choice; -14014 follows a community fixture.
OAUTH_INVALID_PARAM = (-14001, "Invalid parameter")
OAUTH_INVALID_APP_ID = (-14002, "Invalid appId")
OAUTH_INVALID_SECRET = (-14004, "Invalid secret key")
OAUTH_INVALID_REFRESH = (-14014, "Invalid refresh token")

# The legacy transaction/promotion paths were shut down on 2026-03-01 (zalo-api.md §2.1).
# No official answer is documented; the sandbox answers -209 "Not supported this api".
DISCONTINUED_CODE = -209
DISCONTINUED_MESSAGE = (
    "Not supported this api: transaction and promotion messages were discontinued on "
    "01/03/2026, use /v3.0/oa/message/template"
)


def message_for(code: int, host: Host) -> str:
    table = OA_MESSAGES if host == "oa" else ZNS_MESSAGES
    return table.get(code, "Success" if code == 0 else f"Error {code}")
