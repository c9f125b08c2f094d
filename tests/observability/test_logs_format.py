"""bridge/logs.py: one JSON object per line, phones masked, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from confluent_kafka import Producer

from bridge.logs import (
    KafkaLog,
    RedactingFilter,
    redact_text,
    register_secrets,
    setup_logging,
    with_kafka_log,
)
from bridge.settings import LogSettings, Settings
from waiting import wait_for


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
                                   "0912.345.678", "84-912-345-678", "0084912345678",
                                   "+84(0)912345678", "+84 (0) 912 345 678", "(+84) 912345678",
                                   "%2B84912345678"])
def test_phones_are_masked_in_free_text_and_extras(logged: io.StringIO, typed: str) -> None:
    logging.getLogger("t").info(f"citizen {typed} asked", extra={"phone": typed,
                                                                 "body": {"to": [typed]}})
    text = logged.getvalue()
    assert typed not in text and "912345678" not in text.replace("x", "")
    [line] = lines(logged)
    msg = str(line["msg"])
    assert "xxxx" in msg and msg.endswith("678 asked")


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


def test_a_database_password_is_never_logged_even_alone() -> None:
    """libpq quotes a password on its own when it takes it for a host name; `ledger.url` is
    a plain string, not a SecretStr."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    settings = Settings(ledger={"url": "postgresql://onestop_ledger:Ledg%2BPw-s3cr3t@db/onestop_ledger"},
                        source={"dsn": "host=db user=c password=Cap-Pw-s3cr3t dbname=onestop"})
    try:
        setup_logging(LogSettings(format="json"), stream, secrets=settings)
        logging.getLogger("t").error('could not translate host name "Ledg+Pw-s3cr3t@db", '
                                     'also Ledg%2BPw-s3cr3t and Cap-Pw-s3cr3t')
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "s3cr3t" not in text and text.count("[redacted]") == 3


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


FAIL = ("[thrd:10.0.0.5:9092/bootstrap]: Connect to ipv4#10.0.0.5:9092 failed: Connection refused "
        "(after {}ms in state CONNECT{})")


def _kafka_log() -> tuple[KafkaLog, list[float]]:
    now = [1000.0]
    return KafkaLog(window_s=60.0, clock=lambda: now[0]), now


def test_librdkafka_lines_become_json_with_facility_and_client(logged: io.StringIO) -> None:
    kafka_log, _ = _kafka_log()
    kafka_log.log(40, "%s [%s] %s", "FAIL", "onestop-bridge-capture#producer-1", FAIL.format(0, ""))
    [line] = lines(logged)
    assert (line["logger"], line["level"], line["facility"], line["client"]) == (
        "onestop.kafka", "ERROR", "FAIL", "onestop-bridge-capture#producer-1")
    assert line["msg"] == FAIL.format(0, "") and "repeats_not_logged" not in line


def test_a_repeated_librdkafka_line_is_logged_once_a_window_with_its_count(logged: io.StringIO) -> None:
    kafka_log, now = _kafka_log()
    for i in range(300):  # librdkafka's reconnect attempts: every ~50 ms, "after Nms" varies
        now[0] = 1000.0 + i * 0.05
        suppressed = f", {i} identical error(s) suppressed" if i % 2 else ""  # librdkafka's own
        kafka_log.log(40, "%s [%s] %s", "FAIL", "c#producer-1", FAIL.format(i % 3, suppressed))
    assert len(lines(logged)) == 1
    now[0] = 1000.0 + 60.0
    kafka_log.log(40, "%s [%s] %s", "FAIL", "c#producer-1", FAIL.format(7, ""))
    [_, second] = lines(logged)
    assert second["repeats_not_logged"] == 299 and second["msg"] == FAIL.format(7, "")


def test_other_lines_and_other_clients_are_not_held_back(logged: io.StringIO) -> None:
    kafka_log, _ = _kafka_log()
    kafka_log.log(40, "%s [%s] %s", "FAIL", "c#producer-1", FAIL.format(0, ""))
    kafka_log.log(40, "%s [%s] %s", "FAIL", "c#consumer-2", FAIL.format(0, ""))
    kafka_log.log(30, "%s [%s] %s", "CONFWARN", "c#producer-1", "[thrd:app]: property x")
    assert [x["client"] for x in lines(logged)] == ["c#producer-1", "c#consumer-2", "c#producer-1"]


def test_a_real_client_prints_nothing_of_its_own(logged: io.StringIO, capfd) -> None:
    producer = Producer(with_kafka_log({"bootstrap.servers": "127.0.0.1:1",
                                        "client.id": "logs-format-test"}))

    def reached_the_log() -> bool:
        producer.poll(0.1)  # hands over librdkafka's queued lines
        return any(x["logger"] == "onestop.kafka" for x in lines(logged))

    wait_for(reached_the_log, timeout=10, message="librdkafka's connection failure reaches the log")
    assert "%3|" not in capfd.readouterr().err  # librdkafka's own stderr format
