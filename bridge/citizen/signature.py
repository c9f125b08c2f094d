"""Verify Zalo's ``X-ZEvent-Signature`` (zalo-api.md §7.2, §10.1).

Documented: hex SHA-256 (not an HMAC) of ``app_id + raw_body + timestamp + OA secret key``,
``timestamp`` being the body's own field. Sources disagree on three details, so every
documented variant is accepted and the one that matched is reported (the caller logs it
and stores it with the event): the header as bare hex or ``mac=<hex>``, ``oa_id`` instead
of ``app_id`` as the first term, and the app secret instead of the OA secret key as the
last (one source; reported as ``…+app_secret``). Anything else is refused.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from bridge.sandbox.signing import zalo_signature


@dataclass(frozen=True, slots=True)
class SignatureConfig:
    app_id: str
    oa_id: str
    secret: str  # the OA secret key
    app_secret: str = ""

    @property
    def usable(self) -> bool:
        return bool(self.secret or self.app_secret) and bool(self.app_id or self.oa_id)


def _header_digest(header: str) -> tuple[str, str] | None:
    """(form, lower-case hex) of the header value, or None if it is not a SHA-256 hex."""
    value = header.strip()
    form = "bare"
    if value[:4].lower() == "mac=":
        value, form = value[4:].strip(), "mac"
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        return None
    return form, value.lower()


def verify(cfg: SignatureConfig, header: str | None, raw_body: bytes, timestamp: str) -> str | None:
    """The variant that matched (``app_id/mac``, ``oa_id/bare`` …) or None.

    Constant-time comparisons; every candidate is computed so that timing does not
    tell which first term is in use.
    """
    if not header or not cfg.usable:
        return None
    parsed = _header_digest(header)
    if parsed is None:
        return None
    form, given = parsed
    matched: str | None = None
    for name, first in (("app_id", cfg.app_id), ("oa_id", cfg.oa_id)):
        for which, secret in (("", cfg.secret), ("+app_secret", cfg.app_secret)):
            if not first or not secret:
                continue
            expected = zalo_signature(first, raw_body, timestamp, secret)
            if hmac.compare_digest(expected, given) and matched is None:
                matched = f"{name}{which}/{form}"
    return matched
