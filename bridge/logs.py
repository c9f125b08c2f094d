"""Logging for every process: one JSON object per line on stderr.

Fields passed with ``extra={...}`` become top-level keys, so a dossier's path can be
followed by ``dossier_code`` and ``idempotency_key``. Safety nets run on every line,
whatever the caller did: phone numbers are masked (``849xxxxx678``), also inside free
text; values of secret-looking keys (token, secret, password, api_key, authorization)
are replaced, also when they appear in free text (``access_token=…``, ``"refresh_token":
"…"``, ``Bearer …``, e.g. in an exception that quotes a request); and any value
registered with `register_secrets` (every SecretStr of the settings) never appears.
`RedactingFilter` applies the same rules to a record for handlers other than ours
(pytest's caplog, a syslog handler added by an operator).

    from bridge.logs import setup_logging
    setup_logging(settings.log)          # [log] level = "INFO", format = "json" | "text"
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterable
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import psycopg2
from psycopg2.extensions import parse_dsn
from pydantic import BaseModel, SecretStr

from bridge.settings import LogSettings

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                        "taskName"}
_SECRET_KEY = re.compile(r"token|secret|password|passwd|api_key|apikey|authorization|dsn",
                         re.IGNORECASE)
# Vietnamese mobile numbers in every form `normalise_phone` accepts but the bare nine digits:
# 0909…, 84909…, +84 909 123 456, 0084…, (+84) 909…, +84 (0) 909…, and %2B84… in a URL.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:(?:\+|%2[Bb]|00)?\(?84\)?[ .\-]?(?:\(0\)[ .\-]?)?|0)"
                    r"[35789](?:[ .\-]?\d){8}(?![0-9A-Za-z])")
REDACTED = "[redacted]"
# `key=value`, `key: value`, `"key": "value"` for secret-looking keys inside free text.
_SECRET_IN_TEXT = re.compile(
    r"""(?i)((?:access_token|refresh_token|secret_key|app_secret|client_secret|api_key|apikey"""
    r"""|password|passwd|secret|authorization)["']?\s*[:=]\s*["']?)(?!\[redacted\])(?:bearer\s+)?"""
    r"""[^\s"'&,;}\]]+""")
_BEARER = re.compile(r"(?i)\bbearer\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]{6,}")
_MIN_SECRET_LEN = 6  # shorter registered values would blank ordinary words
_secrets: set[str] = set()


def register_secrets(source: BaseModel | Iterable[str | SecretStr]) -> None:
    """Never log these values: every SecretStr in a settings model, or given strings."""
    values = _secret_values(source) if isinstance(source, BaseModel) else source
    for value in values:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw and len(raw) >= _MIN_SECRET_LEN:
            _secrets.add(raw)


def _secret_values(model: BaseModel) -> list[str | SecretStr]:
    """Every SecretStr, and the password of every database URL or DSN (`ledger.url` is a
    plain string; a connection error may quote the password alone)."""
    found: list[str | SecretStr] = []
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, SecretStr):
            found.append(value)
            found.extend(_dsn_passwords(value.get_secret_value()))
        elif isinstance(value, str):
            found.extend(_dsn_passwords(value))
        elif isinstance(value, BaseModel):
            found.extend(_secret_values(value))
    return found


def _dsn_passwords(text: str) -> list[str]:
    """The password of `scheme://user:password@host/…` (as written and decoded), or of a
    libpq `key=value` DSN (read by libpq's own parser)."""
    if "://" in text:
        try:
            password = urlsplit(text).password
        except ValueError:
            return []
        return [password, unquote(password)] if password else []
    if "password" not in text:
        return []
    try:
        password = parse_dsn(text).get("password")
    except psycopg2.ProgrammingError:
        return []
    return [password] if password else []


def mask_phones(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", re.sub(r"^%2[Bb]", "", match.group(0)))
        return digits[:3] + "x" * (len(digits) - 6) + digits[-3:]

    return _PHONE.sub(mask, text)


def redact_text(text: str) -> str:
    """Free text as it may be logged: secrets blanked, phone numbers masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub("Bearer " + REDACTED, text)
    return mask_phones(text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and key not in ("idempotency_key",):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(key, v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites the record itself (message, extras, exception text) before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _clean(key, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = _clean(key, value)
        if record.exc_info:
            doc["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: _clean(k, v) for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")}
        line = redact_text(super().format(record))
        return line + (" " + json.dumps(extras, ensure_ascii=False, default=str) if extras else "")


def setup_logging(settings: LogSettings | None = None, stream: TextIO | None = None, *,
                  secrets: BaseModel | Iterable[str | SecretStr] | None = None) -> None:
    """`secrets`: the whole Settings (its SecretStr values are never logged) or values."""
    settings = settings or LogSettings()
    if secrets is not None:
        register_secrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # Third-party chatter that would drown the bridge's own lines.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class KafkaLog:
    """librdkafka's log lines, as this process's log lines, each at most once a minute.

    Without a `logger`, librdkafka prints its own format (``%3|…|FAIL|…``) on stderr, in
    the middle of the JSON stream operators parse, and while a broker is down that is a
    line per reconnect attempt per client (hundreds a minute). Given as a client's
    ``logger``, confluent-kafka hands us the lines when the client is polled. A line equal,
    but for its numbers ("after 0ms") and librdkafka's own ", 3 identical error(s)
    suppressed", to one logged less than `window_s` ago is counted instead, and the count is
    carried by its next logged occurrence.
    """

    _SUPPRESSED = re.compile(r", \d+ identical error\(s\) suppressed")
    _NUMBERS = re.compile(r"\d+")

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logging.getLogger("onestop.kafka")
        self._window, self._clock = window_s, clock
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}  # key -> (logged at, held)
        self._lock = threading.Lock()  # clients are polled from several threads

    def log(self, level: int, _format: str, facility: str, client: str, text: str) -> None:
        """The method confluent-kafka calls: ``log(level, "%s [%s] %s", fac, name, buf)``."""
        key = (facility, client, self._NUMBERS.sub("#", self._SUPPRESSED.sub("", text)))
        now = self._clock()
        with self._lock:
            logged_at, held = self._last.get(key, (None, 0))
            if logged_at is not None and now - logged_at < self._window:
                self._last[key] = (logged_at, held + 1)
                return
            if len(self._last) >= 1024:  # forget lines not seen for a window
                self._last = {k: v for k, v in self._last.items() if now - v[0] < self._window}
            self._last[key] = (now, 0)
        extra: dict[str, Any] = {"facility": facility, "client": client}
        if held:
            extra["repeats_not_logged"] = held
        self._log.log(level, text, extra=extra)


KAFKA_LOG = KafkaLog()


def with_kafka_log(config: dict[str, Any]) -> dict[str, Any]:
    """A Kafka client's configuration whose log lines go through `KAFKA_LOG`."""
    return {**config, "logger": KAFKA_LOG}
