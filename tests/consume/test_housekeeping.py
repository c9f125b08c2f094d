"""The consumer loop's hourly ledger housekeeping, as `run` configures it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from events import event, row

from bridge.citizen.dossiers import LedgerDossiers
from bridge.consume.loop import ConsumerLoop, LoopTimers
from bridge.dispatch.outcome import DeliveryOutcome
from bridge.ledger import Incoming, Ledger
from bridge.ledger.retention import Pass
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


def test_closed_dossiers_are_redacted_when_configured(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=lambda: now[0])
    try:
        pipeline = Pipeline(Settings())
        ev = pipeline.decode(json.dumps(event("u", row(status=10))).encode())
        assert ev is not None
        ledger.admit([Incoming(ev, pipeline.event_id(ev), pipeline.dossier_key(ev))], pipeline.notify)
        now[0] += 2 * 86400
        days = load_settings(None, ledger={"redact_closed_after_days": 1}).ledger.redact_closed_after_days
        loop_with(ledger, LoopTimers(redact_closed_after_s=days * 86400))._periodic()
        [state] = LedgerDossiers(ledger.engine).by_codes([row()["code"]]).values()
        assert (state.status, state.applicant_name, state.applicant_phone) == (10, None, None)
    finally:
        ledger.close()


def test_an_unfinished_redaction_pass_comes_back_within_a_minute() -> None:
    """A first pass over a large ledger is done in slices, not an hour apart."""
    ledger = MagicMock()
    ledger.redact_sent.return_value = Pass(2000, False)
    ledger.redact_closed.return_value = Pass(0, True)
    loop = loop_with(ledger, LoopTimers(redact_sent_after_s=86400, redact_closed_after_s=86400))
    before = time.monotonic()
    loop._periodic()
    assert before + 60 <= loop._next["prune"] <= time.monotonic() + 60
    ledger.redact_sent.return_value = Pass(5, True)
    loop._next["prune"] = 0.0
    loop._periodic()
    assert loop._next["prune"] >= before + 3600


@pytest.mark.parametrize("key", ["redact_sent_after_days", "redact_closed_after_days"])
def test_a_negative_redaction_age_is_refused(key: str) -> None:
    with pytest.raises(Exception, match=key):
        load_settings(None, ledger={key: -1})
