"""ZNS parameter values cut to the approved template's limits.

A value longer than the template's `maxLength` makes Zalo refuse the whole message (-1121,
permanent): the notice then goes by SMS at several times the price, or to the DLQ. A long
procedure or agency name is better shortened than not sent by ZNS at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.errors import BridgeError

log = logging.getLogger(__name__)
ELLIPSIS = "…"
REFRESH_S = 3600.0  # a template's limits change only when it is edited and approved again
RETRY_S = 300.0  # limits Zalo would not tell: nothing is cut meanwhile


def clip(data: dict[str, str], limits: dict[str, int]) -> tuple[dict[str, str], list[str]]:
    """`data` with every value over its limit cut, ending in "…"; and the names cut."""
    cut = [name for name, value in data.items() if len(value) > limits.get(name, len(value))]
    if not cut:
        return data, []
    return {name: value if name not in cut else _shorten(value, limits[name])
            for name, value in data.items()}, cut


def _shorten(value: str, limit: int) -> str:
    """At most `limit` characters ending in "…", cut between words when one ends not too
    far back ("Nguyễn…", not "Nguyễn Th…")."""
    head = value[:limit - len(ELLIPSIS)]
    if value[len(head)] != " ":  # the cut falls inside a word
        space = head.rfind(" ")
        if space >= limit // 2:
            head = head[:space]
    return head.rstrip(" ,;:-") + ELLIPSIS


class TemplateLimits:
    """Each template's parameter limits, read from Zalo once an hour and kept."""

    def __init__(self, read: Callable[[str, str], dict[str, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read  # (token, template_id) → {param: maxLength}
        self._clock = clock
        self._known: dict[str, tuple[float, dict[str, int]]] = {}  # id → (until, limits)
        self._lock = threading.Lock()

    def get(self, token: str, template_id: str) -> dict[str, int]:
        known = self._known.get(template_id)
        if known is not None and self._clock() < known[0]:
            return known[1]
        with self._lock:  # one read for the workers that all miss at once (each is a request)
            known = self._known.get(template_id)
            if known is not None and self._clock() < known[0]:
                return known[1]
            return self._fetch(token, template_id)

    def _fetch(self, token: str, template_id: str) -> dict[str, int]:
        now = self._clock()
        try:
            limits, until = self._read(token, template_id), now + REFRESH_S
        except BridgeError as exc:
            log.info("ZNS template limits not read; values are sent uncut",
                     extra={"template_id": template_id, "code": exc.code, "error": exc.message})
            limits, until = {}, now + RETRY_S
        self._known[template_id] = (until, limits)
        return limits
