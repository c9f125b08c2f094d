"""Zalo CS message bodies (zalo-api.md §2.2), kept within Zalo's limits by construction.

Limits: text ≤ 2,000 characters; ≤ 5 buttons; query payloads ≤ 1,000 characters;
request_user_info title ≤ 100 and subtitle ≤ 500. Button titles are kept short (≤ 40)
so they fit on a phone screen; texts that would overflow are cut at a line boundary
with an ellipsis rather than refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEXT_MAX = 2000
BUTTONS_MAX = 5
BUTTON_TITLE_MAX = 40
QUERY_PAYLOAD_MAX = 1000
INFO_TITLE_MAX = 100
INFO_SUBTITLE_MAX = 500
ELLIPSIS = "…"

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Button:
    title: str
    type: str       # oa.open.url | oa.query.show | oa.query.hide | oa.open.phone
    payload: Any

    def to_json(self) -> dict[str, Any]:
        if len(self.title) > BUTTON_TITLE_MAX:
            raise ValueError(f"button title over {BUTTON_TITLE_MAX} characters: {self.title!r}")
        if self.type.startswith("oa.query") and len(str(self.payload)) > QUERY_PAYLOAD_MAX:
            raise ValueError("query payload over 1,000 characters")
        return {"title": self.title, "type": self.type, "payload": self.payload}


def url_button(title: str, url: str) -> Button:
    return Button(title, "oa.open.url", {"url": url})


def query_button(title: str, payload: str, *, hidden: bool = False) -> Button:
    return Button(title, "oa.query.hide" if hidden else "oa.query.show", payload)


def phone_button(title: str, phone: str) -> Button:
    return Button(title, "oa.open.phone", {"phone_code": "".join(c for c in phone if c.isdigit())})


def clip(text: str, limit: int = TEXT_MAX) -> str:
    """`text` cut to `limit` characters, at a line or word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at > limit * 0.6:
            cut = cut[:at]
            break
    return cut.rstrip() + ELLIPSIS


def text(body: str) -> Message:
    return {"text": clip(body)}


def notice(body: str, dossier_code: str) -> Message:
    """A notice to a follower, with a button that asks this chat for the dossier's status:
    the button sends "Tra cứu hồ sơ <code>" as the follower's own message (oa.query.show)."""
    return with_buttons(body, [query_button("Tra cứu hồ sơ này", f"Tra cứu hồ sơ {dossier_code}")])


def with_buttons(body: str, buttons: list[Button]) -> Message:
    if not buttons:
        return text(body)
    if len(buttons) > BUTTONS_MAX:
        raise ValueError(f"at most {BUTTONS_MAX} buttons, got {len(buttons)}")
    return {"text": clip(body), "attachment": {"type": "template", "payload": {
        "buttons": [b.to_json() for b in buttons]}}}


def request_user_info(title: str, subtitle: str, image_url: str = "") -> Message:
    element: dict[str, Any] = {"title": clip(title, INFO_TITLE_MAX),
                               "subtitle": clip(subtitle, INFO_SUBTITLE_MAX)}
    if image_url:
        element["image_url"] = image_url
    return {"attachment": {"type": "template", "payload": {
        "template_type": "request_user_info", "elements": [element]}}}
