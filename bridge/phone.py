"""Vietnamese phone numbers: normalisation to 84XXXXXXXXX and masking for logs."""

from __future__ import annotations

import re
from functools import lru_cache

from bridge.model import UNAVAILABLE

_NON_DIGITS = re.compile(r"[\s.\-()/]")
# Mobile prefixes after the 2018 renumbering: 3x, 5x, 7x, 8x, 9x (9 digits after 84).
_MOBILE = re.compile(r"^84[35789]\d{8}$")


def normalise_phone(raw: object) -> str | None:
    """Return the number as 84XXXXXXXXX, or None when absent, not sent (UNAVAILABLE: an
    unchanged TOAST value, a column the event lacks) or not a Vietnamese mobile.

    Accepts what desk staff type: ``0909 123 456``, ``+84 909.123.456``, ``84909123456``,
    ``909123456``, ``+84 (0) 909 123 456``.
    """
    if raw is None or raw is UNAVAILABLE:
        return None
    return _normalise_text(raw if raw.__class__ is str else str(raw))


@lru_cache(maxsize=16_384)  # a dossier's phone recurs in each of its notices
def _normalise_text(raw: str) -> str | None:
    text = _NON_DIGITS.sub("", raw)
    if text.startswith("+"):
        text = text[1:]
    if text.startswith("0084"):
        text = text[2:]
    if text.startswith("840") and len(text) == 12:  # "+84 (0)909…": the trunk 0 kept
        text = "84" + text[3:]
    if text.startswith("0"):
        text = "84" + text[1:]
    elif len(text) == 9:
        text = "84" + text
    return text if _MOBILE.match(text) else None


def mask_phone(phone: str | None) -> str:
    """``84912345678`` → ``849xxxxx678``: enough to recognise, not enough to call."""
    if not phone:
        return "-"
    if len(phone) <= 6:
        return "x" * len(phone)
    return phone[:3] + "x" * (len(phone) - 6) + phone[-3:]
