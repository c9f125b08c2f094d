"""A dead letter's error message is kept for weeks and printed by `dlq list` / `dlq show`:
the same redaction as a log line (bridge/dlq/producer.py)."""

from __future__ import annotations

from typing import Any

from bridge.consume.records import SourceRecord
from bridge.dlq.producer import Failure, OutcomeProducer
from bridge.settings import KafkaSettings


class Capture:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def test_secrets_and_phones_in_an_error_message_are_redacted_in_the_dead_letter() -> None:
    producer = Capture()
    record = SourceRecord("onestop.public.dossiers", 0, 7, b'{"id": 7}', b'{"phone": "0909123456"}')
    message = "zalo oauth: refused secret_key=AppSecret-9f8e7d for 0909123456 (Bearer AT-5a4b3c2d1e)"
    OutcomeProducer(producer, KafkaSettings()).dead_letter(
        record, Failure("retries_exhausted", "TransportError", message, "deliver"), on_durable=lambda: None)
    [sent] = producer.sent
    headers = {k: v for k, v in sent["headers"]}
    shown = headers["onestop.error.message"].decode()
    assert "9f8e7d" not in shown and "0909123456" not in shown and "5a4b3c2d1e" not in shown
    assert shown.startswith("zalo oauth: refused secret_key=[redacted] for 090xxxx456")
    assert sent["value"] == record.value  # the dead letter itself is the record, unchanged
