"""Logging for every process: one JSON object per line on stderr.

Fields passed with ``extra={...}`` become top-level keys, so a dossier's path can be
followed by ``dossier_code`` and ``idempotency_key``. Two safety nets run on every line,
whatever the caller did: phone numbers are masked (``849xxxxx678``) and values of
secret-looking keys (token, secret, password, api_key, authorization) are replaced.

    from bridge.logs import setup_logging
    setup_logging(settings.log)          # [log] level = "INFO", format = "json" | "text"
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from bridge.settings import LogSettings

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                        "taskName"}
_SECRET_KEY = re.compile(r"token|secret|password|passwd|api_key|apikey|authorization|dsn",
                         re.IGNORECASE)
# Vietnamese mobile numbers as typed or normalised: 0909…, 84909…, +84 909 123 456.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?84|0)[ .\-]?[35789](?:[ .\-]?\d){8}(?![0-9A-Za-z])")
REDACTED = "[redacted]"


def mask_phones(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return digits[:3] + "x" * (len(digits) - 6) + digits[-3:]

    return _PHONE.sub(mask, text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and key not in ("idempotency_key",):
        return REDACTED
    if isinstance(value, str):
        return mask_phones(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(key, v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return mask_phones(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "msg": mask_phones(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = _clean(key, value)
        if record.exc_info:
            doc["exc"] = mask_phones(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: _clean(k, v) for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")}
        line = mask_phones(super().format(record))
        return line + (" " + json.dumps(extras, ensure_ascii=False, default=str) if extras else "")


def setup_logging(settings: LogSettings | None = None, stream: TextIO | None = None) -> None:
    settings = settings or LogSettings()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # Third-party chatter that would drown the bridge's own lines.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
