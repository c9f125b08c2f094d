"""What a citizen typed: accent folding, dossier codes, commands.

Everything here is pure: user text is only ever matched, never interpreted or formatted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_CODES_PER_MESSAGE = 5

# <agency code>-<yymmdd>-<4 digits>, e.g. 000.00.23.H39-240612-0001 (domain.md §2a).
# Tolerated: spaces around separators, lower case, a missing dot or dash, other dashes.
_SEP = r"\s*[-–—_/]?\s*"
_DOT = r"\s*\.?\s*"
_CODE = re.compile(
    r"(?<![0-9A-Z])(\d{3})" + _DOT + r"(\d{2})" + _DOT + r"(\d{2})" + _DOT + r"([A-Z]\d{2})"
    + _SEP + r"(\d{2})(\d{2})(\d{2})" + _SEP + r"(\d{4})(?!\d)")


def fold(text: str) -> str:
    """Lower case, no diacritics, đ→d, single spaces: ``"Thủ  TỤC"`` → ``"thu tuc"``."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(bare.lower().split())


def find_codes(text: str) -> list[str]:
    """Every dossier code in the text, canonical (``000.00.23.H39-240612-0001``), in order,
    without repeats."""
    found: list[str] = []
    for m in _CODE.finditer(text.upper()):
        a, b, c, agency, yy, mm, dd, seq = m.groups()
        if not (1 <= int(mm) <= 12 and 1 <= int(dd) <= 31):
            continue
        code = f"{a}.{b}.{c}.{agency}-{yy}{mm}{dd}-{seq}"
        if code not in found:
            found.append(code)
    return found


# A code's tail without its head, or with a digit too few or too many: "240612-0001",
# "H39-240612-0001", "…-240612-001", a month of 13. Worth telling apart from a question.
_PARTS = r"(?:\s*[-–—_/]\s*|\s+)"  # a separator there must be (else: a phone number)
_PARTIAL_CODE = re.compile(r"(?<!\d)\d{6}" + _PARTS + r"\d{3,5}(?!\d)|[A-Z]\d{2}" + _PARTS + r"\d{6}")


def looks_like_a_code(text: str) -> bool:
    """Part of a dossier code, or one mistyped (when `find_codes` found none)."""
    return _PARTIAL_CODE.search(text.upper()) is not None


def canonical_code(text: str) -> str | None:
    """The one dossier code in `text`, or None."""
    codes = find_codes(text)
    return codes[0] if len(codes) == 1 else None


def second_factor(text: str) -> str | None:
    """Four digits and nothing else (spaces, dots allowed): an answer to the phone question."""
    return _digits(text, 4)


_SIX_DIGITS = re.compile(r"(?<![\d.\-/])\d{3}\s?\d{3}(?![\d.\-/])")


def link_code(text: str) -> str | None:
    """A link code typed back (bridge/citizen/linking.py): six digits, alone or with words
    around them ("Mã: 285126", the ZNS message pasted) — but not inside a dossier code."""
    alone = _digits(text, 6)
    if alone is not None or find_codes(text):
        return alone
    found = _SIX_DIGITS.findall(text)
    return found[0].replace(" ", "") if len(found) == 1 else None


def _digits(text: str, count: int) -> str | None:
    stripped = re.sub(r"[\s.\-]", "", text)
    return stripped if len(stripped) == count and stripped.isascii() and stripped.isdigit() else None


@dataclass(frozen=True, slots=True)
class Command:
    name: str          # see `parse_command`
    arg: str = ""      # the rest of the message, original spelling kept


RATING_PREFIX = "#danh-gia"
_RATING = re.compile(r"^#danh-gia\s+(\S+)\s+([1-5])$")

# (folded prefix, command). Longer prefixes first so "huy dang ky tin tuc" wins.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("huy dang ky tin tuc", "unsubscribe:tin-tuc"),
    ("huy dang ky nhan tin tuc", "unsubscribe:tin-tuc"),
    ("huy dang ky nhan tin", "unsubscribe:tin-tuc"),
    ("huy dang ky khan cap", "unsubscribe:khan-cap"),
    ("huy dang ky thong bao khan cap", "unsubscribe:khan-cap"),
    ("huy dang ky nhan thong bao khan cap", "unsubscribe:khan-cap"),
    ("huy dang ky nhan tin khan cap", "unsubscribe:khan-cap"),
    ("huy dang ky", "unsubscribe:all"),
    ("dang ky tin tuc", "subscribe:tin-tuc"),
    ("dang ky nhan tin tuc", "subscribe:tin-tuc"),
    ("dang ky nhan tin", "subscribe:tin-tuc"),
    ("dang ky khan cap", "subscribe:khan-cap"),
    ("dang ky thong bao khan cap", "subscribe:khan-cap"),
    ("dang ky nhan thong bao khan cap", "subscribe:khan-cap"),
    ("dang ky nhan tin khan cap", "subscribe:khan-cap"),
    ("tra cuu ho so", "lookup_help"),
    ("tra cuu thu tuc", "procedure"),
    ("thu tuc", "procedure"),
    ("gop y", "feedback"),
    ("phan anh", "feedback"),
    ("ho tro", "support"),
    ("hotline", "support"),
    ("lien he", "support"),
    ("tro giup", "help"),
    ("huong dan", "help"),
    ("menu", "help"),
)
# A thank-you or an "ok" (after a notice, typically) wants a short answer, not the menus.
_COURTESY = frozenset({"cam on", "cam on a", "cam on nhieu", "xin cam on", "thanks", "thank you",
                       "ok", "oke", "okay", "vang", "da", "da vang", "vang a", "da a", "👍"})


def is_courtesy(text: str) -> bool:
    return fold(text.strip().rstrip("!.")).strip() in _COURTESY


# "hủy đăng ký nhận tin tức" is news only, not every topic "hủy đăng ký" would cancel.
_LONGEST_FIRST = sorted(_PREFIXES, key=lambda entry: -len(entry[0]))


def parse_command(text: str) -> Command | None:
    """A keyword command at the start of the message, accent- and case-insensitive."""
    stripped = text.strip()
    rating = _RATING.match(stripped)
    if rating:
        return Command("rating", f"{rating.group(1)} {rating.group(2)}")
    folded = fold(stripped)
    for prefix, name in _LONGEST_FIRST:
        if folded == prefix or folded.startswith(prefix + " ") or folded.startswith(prefix + ":"):
            return Command(name, _rest_after(stripped, len(prefix.split())))
    return None


def _rest_after(text: str, words: int) -> str:
    """The original text after its first `words` words (and a ':' or '-' after them)."""
    parts = text.strip().replace(":", ": ", 1).split(None, words)
    rest = parts[words] if len(parts) > words else ""
    return rest.lstrip(":-– ").strip()
