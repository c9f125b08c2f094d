"""bridge/logs.py: one JSON object per line, phones masked, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bridge.logs import RedactingFilter, redact_text, register_secrets, setup_logging
from bridge.settings import LogSettings, Settings


@pytest.fixture()
def logged() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    setup_logging(LogSettings(level="DEBUG", format="json"), stream,
                  secrets=Settings(sms={"api_key": "sms-key-0123456789"}))
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_event_with_the_standard_fields(logged: io.StringIO) -> None:
    log = logging.getLogger("bridge.test")
    log.info("notification sent\nsecond line", extra={"dossier_code": "000.00.23.H39-261127-0001",
                                                      "idempotency_key": "ab12", "channel": "zns"})
    log.warning("plain %s", "args")
    [first, second] = lines(logged)
    assert {"ts", "level", "logger", "msg"} <= set(first)
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "bridge.test",
                                                               "notification sent\nsecond line")
    assert (first["dossier_code"], first["idempotency_key"], first["channel"]) == (
        "000.00.23.H39-261127-0001", "ab12", "zns")
    assert second["msg"] == "plain args"


@pytest.mark.parametrize("typed", ["84912345678", "0912345678", "+84 912 345 678",
                                   "0912.345.678", "84-912-345-678"])
def test_phones_are_masked_in_free_text_and_extras(logged: io.StringIO, typed: str) -> None:
    logging.getLogger("t").info(f"citizen {typed} asked", extra={"phone": typed,
                                                                 "body": {"to": [typed]}})
    text = logged.getvalue()
    assert typed not in text and "912345678" not in text.replace("x", "")
    [line] = lines(logged)
    assert "xxxx" in line["msg"] and line["msg"].endswith("678 asked")  # type: ignore[union-attr]


def test_masked_form_is_849xxxxx678() -> None:
    assert redact_text("phone 84912345678") == "phone 849xxxxx678"


def test_dossier_codes_and_keys_are_not_mistaken_for_phones() -> None:
    text = "000.00.23.H39-261127-0912 key 0912345678abcdef1234567890abcdef ts 1764300000000"
    assert redact_text(text) == text


def test_tokens_and_secrets_are_redacted_everywhere(logged: io.StringIO) -> None:
    log = logging.getLogger("t")
    log.info("refresh answered %s", '{"access_token": "AT-abcdef123", "refresh_token": "RT-zyx987654"}',
             extra={"access_token": "AT-abcdef123", "settings_secret": SecretStr("s3cr3t-value"),
                    "headers": {"Authorization": "Bearer AT-abcdef123"}})
    try:
        raise RuntimeError("GET https://openapi.zalo.me/v3.0/oa/user?access_token=AT-abcdef123 "
                           "with key sms-key-0123456789")
    except RuntimeError:
        log.exception("call failed")
    text = logged.getvalue()
    for secret in ("AT-abcdef123", "RT-zyx987654", "s3cr3t-value", "sms-key-0123456789"):
        assert secret not in text
    assert text.count("[redacted]") >= 5


def test_filter_protects_foreign_handlers_too() -> None:
    register_secrets(["registered-secret-42"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("foreign")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("user 0912345678 token registered-secret-42 access_token=xyz12345")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "user 091xxxx678 token [redacted] access_token=[redacted]\n"
