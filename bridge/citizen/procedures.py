"""The procedure catalogue (thủ tục hành chính) and "thủ tục <từ khoá>" search.

Loaded from JSON (a list of objects, see ``bridge/data/procedures.json``) or CSV (same
keys; ``documents`` and ``keywords`` separated by ``|``). Search is accent-insensitive and
scores phrase and word matches in the name, the keywords, the field and the documents.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from bridge.citizen.text import fold
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

NATIONAL_DETAIL_URL = ("https://dichvucong.gov.vn/p/home/dvc-chi-tiet-thu-tuc-hanh-chinh.html"
                       "?ma_thu_tuc={code}")
# Words that say nothing about which procedure is meant.
_STOP = frozenset("thu tuc lam the nao o dau can gi toi em minh muon xin cho hoi ve cua va "
                  "la bao nhieu lau duoc khong a nhe oi".split())
_STOP_PHRASES = (" giay to ", " ho so ", " thu tuc ")
# What is done (issue again, register, change…), not to what: a match on these alone is no
# match — "cấp lại CCCD" must not answer with "Cấp lại giấy phép lái xe".
_ACTIONS = frozenset("cap lai moi doi dang ky xin lam thay nop giay phep chung nhan xac ban sao "
                     "gia han bo sung".split())


@dataclass(frozen=True, slots=True)
class Procedure:
    code: str
    name: str
    field: str
    time_limit: str
    fee: str
    documents: tuple[str, ...]
    where: str
    code_verified: bool = False
    level: str = ""
    keywords: tuple[str, ...] = ()
    url: str = ""
    note: str = ""

    def link(self, fallback: str) -> str:
        if self.url:
            return self.url
        return NATIONAL_DETAIL_URL.format(code=self.code) if self.code_verified else fallback


@dataclass(slots=True)
class _Indexed:
    proc: Procedure
    name: str
    name_words: set[str]
    name_bigrams: set[str]
    keywords: list[str]
    keyword_words: set[str]
    field_words: set[str]
    doc_words: set[str] = field(default_factory=set)


def _words(text: str) -> list[str]:
    return [w for w in fold(text).replace(",", " ").replace("(", " ").replace(")", " ").split()]


def _bigrams(words: list[str]) -> set[str]:
    return {f"{a} {b}" for a, b in zip(words, words[1:])}


class Catalogue:
    def __init__(self, procedures: list[Procedure]) -> None:
        self.procedures = procedures

    @cached_property
    def _index(self) -> list[_Indexed]:
        out = []
        for p in self.procedures:
            name_words = _words(p.name)
            keywords = [fold(k) for k in p.keywords]
            out.append(_Indexed(
                p, fold(p.name), set(name_words), _bigrams(name_words), keywords,
                {w for k in keywords for w in k.split()}, set(_words(p.field)),
                {w for d in p.documents for w in _words(d)}))
        return out

    def by_code(self, code: str) -> Procedure | None:
        return next((p for p in self.procedures if p.code == code.strip()), None)

    def search(self, query: str, limit: int = 3) -> list[Procedure]:
        exact = self.by_code(query)
        if exact is not None:
            return [exact]
        phrase = fold(query)
        for junk in _STOP_PHRASES:
            phrase = f" {phrase} ".replace(junk, " ").strip()
        words = [w for w in phrase.split() if w not in _STOP] or phrase.split()
        if not words:
            return []
        subject = [w for w in words if w not in _ACTIONS]
        scored = [(self._score(item, phrase, words), item) for item in self._index
                  if not subject or _names_any(item, subject)]
        ranked = sorted((s for s in scored if s[0] >= 3),
                        key=lambda s: (-s[0], len(s[1].name)))
        if not ranked:
            return []
        # Runners-up only when they are real contenders, not a stray shared syllable.
        best = ranked[0][0]
        return [item.proc for score, item in ranked[:limit] if score >= best * 0.5]

    @staticmethod
    def _score(item: _Indexed, phrase: str, words: list[str]) -> float:
        score = 0.0
        core = " ".join(words)
        if core and core in item.name:
            score += 10
        if core and core in item.keywords:
            score += 12
        elif core and any(core in k or k in phrase for k in item.keywords):
            score += 8
        for w in words:
            score += 3 * (w in item.name_words) + 2 * (w in item.keyword_words) \
                + 1 * (w in item.field_words) + 0.5 * (w in item.doc_words)
        score += 2 * len(_bigrams(words) & item.name_bigrams)
        return score


def _names_any(item: _Indexed, words: list[str]) -> bool:
    """Does the procedure's name, keywords or field name one of these words?"""
    return any(w in item.name_words or w in item.keyword_words or w in item.field_words
               for w in words)


def _procedure(raw: dict[str, Any]) -> Procedure:
    def listed(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split("|") if v.strip())
        return tuple(str(v) for v in value or ())

    verified = raw.get("code_verified", False)
    if isinstance(verified, str):
        verified = verified.strip().lower() in ("1", "true", "yes", "có")
    return Procedure(
        code=str(raw["code"]).strip(), name=str(raw["name"]).strip(), field=str(raw["field"]),
        time_limit=str(raw["time_limit"]), fee=str(raw["fee"]),
        documents=listed(raw.get("documents")), where=str(raw["where"]),
        code_verified=bool(verified), level=str(raw.get("level", "")),
        keywords=listed(raw.get("keywords")), url=str(raw.get("url") or ""),
        note=str(raw.get("note") or ""))


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The configured file (``oa.procedures_file``) or the sample shipped with the bridge."""
    try:
        if path is None:
            text = resources.files("bridge").joinpath("data/procedures.json").read_text("utf-8")
            rows = json.loads(text)
        elif str(path).lower().endswith(".csv"):
            with open(path, encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.DictReader(handle))
        else:
            rows = json.loads(Path(path).read_text(encoding="utf-8"))
        procedures = [_procedure(r) for r in (rows["procedures"] if isinstance(rows, dict) else rows)]
    except FileNotFoundError:
        raise ConfigError(f"oa.procedures_file not found: {path}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"procedure catalogue {path or '(built-in)'} is invalid: {exc!r}") from None
    unverified = sum(1 for p in procedures if not p.code_verified)
    if unverified:
        log.warning("procedure codes to verify against the national database",
                    extra={"unverified": unverified, "total": len(procedures)})
    return Catalogue(procedures)
