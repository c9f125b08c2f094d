"""The consumer loop's hourly ledger housekeeping, as `run` configures it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from events import event, present, row

from bridge.citizen.dossiers import LedgerDossiers
from bridge.consume.loop import ConsumerLoop, LoopTimers
from bridge.dispatch.outcome import DeliveryOutcome
from bridge.ledger import Admission, Incoming, Ledger
from bridge.ledger.retention import Pass
from bridge.pipeline import Pipeline
from bridge.settings import Settings, load_settings


def loop_with(ledger: Ledger, timers: LoopTimers) -> ConsumerLoop:
    settings = Settings()
    return ConsumerLoop(settings, Pipeline(settings), ledger, MagicMock(), MagicMock(), MagicMock(),
                        partitions=lambda _topic: 1, timers=timers)


class Clock:
    """Time the test moves."""

    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    """A SQLite ledger on the test's clock."""
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def admit(ledger: Ledger, document: dict[str, Any]) -> Admission:
    pipeline = Pipeline(Settings())
    ev = present(pipeline.decode(json.dumps(document).encode()))
    [admitted] = ledger.admit([Incoming(ev, pipeline.event_id(ev), pipeline.dossier_key(ev))],
                              pipeline.notify)
    return admitted


def test_old_sent_notices_are_redacted_when_configured(ledger: Ledger, clock: Clock) -> None:
    key = admit(ledger, event("c", row(status=2))).to_send[0].key
    ledger.record_sent(key, DeliveryOutcome("sent", "zns", "m-1", 150, []))
    clock.now += 2 * 86400
    loop_with(ledger, LoopTimers())._periodic()  # off by default
    assert present(ledger.get(key)).notification.phone
    days = load_settings(None, ledger={"redact_sent_after_days": 1}).ledger.redact_sent_after_days
    loop_with(ledger, LoopTimers(redact_sent_after_s=days * 86400))._periodic()
    stored = present(ledger.get(key))
    assert (stored.notification.text, stored.notification.phone) == ("", None)


def test_closed_dossiers_are_redacted_when_configured(ledger: Ledger, clock: Clock) -> None:
    admit(ledger, event("u", row(status=10)))
    clock.now += 2 * 86400
    days = load_settings(None, ledger={"redact_closed_after_days": 1}).ledger.redact_closed_after_days
    loop_with(ledger, LoopTimers(redact_closed_after_s=days * 86400))._periodic()
    [state] = LedgerDossiers(ledger.engine).by_codes([row()["code"]]).values()
    assert (state.status, state.applicant_name, state.applicant_phone) == (10, None, None)


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
