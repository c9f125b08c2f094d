"""What a notice says by SMS, and how many SMS parts that is.

SMS is the fallback for citizens Zalo cannot reach, and gateways bill every part: a
Vietnamese text with diacritics travels as UCS-2, 70 characters in one SMS or 67 per part
once split — the full notice (230–410 characters) took 4 to 7 parts. So each kind has a
short `sms` text in its template set: the dossier code, what happened, what to do; the
greeting, the procedure's name and the Zalo-only lookup link are left out. It is rendered
at send time from the notice's stored template parameters, so a notice admitted before a
text changed is sent with the set it was admitted with.
"""

from __future__ import annotations

import re
import string
from functools import cache

from bridge.errors import BadInputError
from bridge.model import Notification
from bridge.templates import load_templates

# GSM 03.38: the basic alphabet (one septet each) and its extension (two: escape + char).
_GSM7 = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
# Characters per single SMS and per part of a split one (6 or 7 octets go to the header).
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sms_parts(text: str) -> int:
    """How many SMS a gateway sends (and bills) for `text`: GSM-7 when every character is
    in the GSM alphabet, else UCS-2, where a character outside the BMP takes two units."""
    if all(c in _GSM7 or c in _GSM7_EXTENSION for c in text):
        units = len(text) + sum(c in _GSM7_EXTENSION for c in text)
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part = UCS2_SINGLE, UCS2_PART
    return 1 if units <= single else -(-units // part)


def sms_text(n: Notification) -> str:
    """The notice as an SMS: its kind's `sms` text filled from the notice's template
    parameters. Without one (a set or kind this version does not know, parameters no longer
    stored), the full text less its Zalo-only sentence."""
    try:
        short = load_templates(n.template_version)["kinds"][n.kind]["sms"]
        return _fill(short, n.template_data)
    except (BadInputError, KeyError):
        pass
    return without_zalo_link(n.text)


def without_zalo_link(text: str) -> str:
    """`text` less its sentence that opens the OA chat (zalo.me/…): it means nothing in an
    SMS, and in the chat itself the notice has a lookup button instead."""
    kept = [s for s in _SENTENCE_END.split(text) if "zalo.me/" not in s]
    return " ".join(kept) if kept else text


def _fill(text: str, data: dict[str, str]) -> str:
    # Field by field, never str.format on the values: braces a citizen typed stay text. A
    # value ending a sentence loses its own full stop (a reason typed "… CCCD." would read
    # "CCCD.."); parameters stored by older releases still carry it.
    parts = _parsed(text)
    out = []
    for (literal, name), (following, _) in zip(parts, [*parts[1:], ("", None)]):
        out.append(literal)
        if name:
            value = data[name]
            out.append((value.rstrip(". ") or value) if following.startswith(".") else value)
    return "".join(out)


@cache
def _parsed(text: str) -> tuple[tuple[str, str | None], ...]:
    return tuple((literal, name) for literal, name, _, _ in string.Formatter().parse(text))
