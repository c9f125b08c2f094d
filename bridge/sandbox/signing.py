"""Zalo webhook signature (zalo-api.md §7.2), shared by the sandbox and the bridge's verifier.

Zalo signs each webhook with a plain SHA-256 (not an HMAC) over the concatenation
``app_id + raw_body + timestamp + oa_secret_key`` and sends it as
``X-ZEvent-Signature: mac=<hex>``; ``timestamp`` is the body's own ``timestamp`` field.
Kept pure (no I/O, no state) so that both sides compute exactly the same thing.
"""

from __future__ import annotations

import hashlib


def zalo_signature(app_id: str, raw_body: bytes, timestamp: str, secret: str) -> str:
    """Hex SHA-256 of ``app_id + raw_body + timestamp + secret`` (the bytes, UTF-8)."""
    digest = hashlib.sha256()
    digest.update(app_id.encode("utf-8"))
    digest.update(raw_body)
    digest.update(timestamp.encode("utf-8"))
    digest.update(secret.encode("utf-8"))
    return digest.hexdigest()


def signature_header(app_id: str, raw_body: bytes, timestamp: str, secret: str) -> str:
    """The header value as the sandbox sends it: ``mac=<hex>``."""
    return "mac=" + zalo_signature(app_id, raw_body, timestamp, secret)
