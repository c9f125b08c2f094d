"""The consumer loop's hourly ledger housekeeping, as `run` configures it."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from events import event, row

from bridge.consume.loop import ConsumerLoop, LoopTimers
from bridge.dispatch.outcome import DeliveryOutcome
from bridge.ledger import Incoming, Ledger
from bridge.pipeline import Pipeline
from bridge.settings import Settings, load_settings


def loop_with(ledger: Ledger, timers: LoopTimers) -> ConsumerLoop:
    settings = Settings()
    return ConsumerLoop(settings, Pipeline(settings), ledger, MagicMock(), MagicMock(), MagicMock(),
                        partitions=lambda _topic: 1, timers=timers)


def test_old_sent_notices_are_redacted_when_configured(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=lambda: now[0])
    try:
        pipeline = Pipeline(Settings())
        ev = pipeline.decode(json.dumps(event("c", row(status=2))).encode())
        assert ev is not None
        incoming = Incoming(ev, pipeline.event_id(ev), pipeline.dossier_key(ev))
        [admitted] = ledger.admit([incoming], pipeline.notify)
        key = admitted.to_send[0].key
        ledger.record_sent(key, DeliveryOutcome("sent", "zns", "m-1", 150, []))
        now[0] += 2 * 86400
        loop_with(ledger, LoopTimers())._periodic()  # off by default
        stored = ledger.get(key)
        assert stored is not None and stored.notification.phone
        days = load_settings(None, ledger={"redact_sent_after_days": 1}).ledger.redact_sent_after_days
        loop_with(ledger, LoopTimers(redact_sent_after_s=days * 86400))._periodic()
        stored = ledger.get(key)
        assert stored is not None and (stored.notification.text, stored.notification.phone) == ("", None)
    finally:
        ledger.close()


def test_a_negative_redaction_age_is_refused() -> None:
    with pytest.raises(Exception, match="redact_sent_after_days"):
        load_settings(None, ledger={"redact_sent_after_days": -1})
