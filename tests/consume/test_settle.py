"""Where each delivery outcome goes, decided by the worker (no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.consume.parked import Parked
from bridge.consume.records import SourceRecord
from bridge.consume.settle import Settled, Settler, WorkItem
from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.errors import ConfigError, DeferError, RecipientError, TransportError
from bridge.ledger import StoredNotification
from bridge.model import Notification
from events import present

NOW = 1_800_000_000.0


def item(seq: int, dossier: str = "1", rounds: int = 0, tp=("t", 0)) -> WorkItem:
    n = Notification(f"CODE-{dossier}", dossier, "RECEIVED", "84909123456", "text", {},
                     f"key-{dossier}-{seq}", f"ev-{seq}", None, "v1")
    record = SourceRecord(tp[0], tp[1], seq, dossier.encode(), b"{}")
    return WorkItem(record, StoredNotification(seq, dossier, "pending", rounds, n), epoch=1)


class Script:
    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def deliver(self, n: Notification) -> DeliveryOutcome:
        self.calls.append(n.idempotency_key)
        answer = self.answers.pop(0) if self.answers else "sent"
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, DeliveryOutcome):
            return answer
        at = datetime.fromtimestamp(NOW, UTC)
        return DeliveryOutcome("sent", "zns", "m-1", 150, [Attempt("zns", "ok", None, None, at, 150)])


def settler(dispatcher, *, parked: Parked | None = None, confirm=lambda k, s: True,
            current=lambda i: True) -> tuple[Settler, list[Settled], list[WorkItem]]:
    reports: list[Settled] = []
    skipped: list[WorkItem] = []
    s = Settler(dispatcher, parked or Parked(), [30.0, 300.0], report=reports.append,
                on_skipped=skipped.append, is_current=current, confirm_parked=confirm,
                clock=lambda: NOW)
    return s, reports, skipped


def test_sent_is_recorded_with_its_attempts() -> None:
    s, reports, _ = settler(Script("sent"))
    s.handle(item(1))
    [r] = reports
    assert r.route == "done" and r.row.status == "sent" and r.row.channel == "zns"
    assert r.row.price_vnd == 150 and r.row.provider_message_id == "m-1" and len(r.row.attempts) == 1


def test_deferral_parks_until_the_given_time_without_using_a_round() -> None:
    until = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=8)
    s, reports, _ = settler(Script(DeferError("night", until=until, code=-133)))
    s.handle(item(1, rounds=1))
    [r] = reports
    assert (r.route, r.row.status, r.row.count_round) == ("retry", "deferred", False)
    assert r.due_ms == int(until.timestamp() * 1000) and r.round_ == 1
    assert present(r.failure).reason == "deferred" and present(r.failure).code == -133


def test_transient_failures_use_the_rounds_then_dead_letter() -> None:
    s, reports, _ = settler(Script(TransportError("503"), TransportError("503"),
                                   TransportError("503")))
    s.handle(item(1, rounds=0))
    s.handle(item(2, dossier="2", rounds=1))
    s.handle(item(3, dossier="3", rounds=2))
    first, second, third = reports
    assert (first.route, first.row.status, first.due_ms) == ("retry", "failed", int((NOW + 30) * 1000))
    assert (second.route, second.due_ms) == ("retry", int((NOW + 300) * 1000))
    assert (third.route, third.row.status, present(third.failure).reason) == ("dlq", "dead",
                                                                     "retries_exhausted")
    assert present(third.failure).error_class == "TransportError" and present(third.failure).attempts == 3
    assert all(r.row.count_round for r in reports)


@pytest.mark.parametrize(("answer", "reason", "error_class"), [
    (RecipientError("no reachable recipient"), "no_recipient", "RecipientError"),
    (ConfigError("OA not authorised", code=-124), "permanent", "ConfigError"),
    (DeliveryOutcome("failed", None, None, 0, [Attempt(
        "zns", "unreachable", -118, "no Zalo account", datetime.fromtimestamp(NOW, UTC))]),
     "channels_refused", "RecipientError"),
    # A template Zalo does not know, SMS off: fix the template, replay `--error PermanentError`.
    (DeliveryOutcome("failed", None, None, 0, [Attempt(
        "zns", "permanent", -109, "Template ID invalid", datetime.fromtimestamp(NOW, UTC))]),
     "channels_refused", "PermanentError"),
])
def test_permanent_refusals_go_to_the_dlq_at_once(answer, reason, error_class,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="bridge.consume.settle")
    s, reports, _ = settler(Script(answer))
    s.handle(item(1))
    [line] = [r for r in caplog.records if r.getMessage() == "notification dead-lettered"]
    # No phone is the desk's routine (its alert is the share): not a WARNING each.
    assert line.levelname == ("INFO" if reason == "no_recipient" else "WARNING")
    [r] = reports
    assert (r.route, r.row.status, present(r.failure).reason, present(r.failure).error_class) == (
        "dlq", "dead", reason, error_class)
    assert present(r.failure).dossier_code == "CODE-1" and present(r.failure).kind == "RECEIVED"


def test_a_dossier_waits_behind_its_parked_notification_others_do_not() -> None:
    until = datetime.fromtimestamp(NOW + 60, UTC)
    dispatcher = Script(DeferError("rate", until=until))
    s, reports, _ = settler(dispatcher)
    s.handle(item(1, dossier="A"))
    s.handle(item(2, dossier="A"))
    s.handle(item(3, dossier="B"))
    assert dispatcher.calls == ["key-A-1", "key-B-3"], "A's second notice was not sent"
    assert [(r.route, r.failure.reason if r.failure else None) for r in reports] == [
        ("retry", "deferred"), ("retry", "parked"), ("done", None)]
    assert reports[1].due_ms == int(NOW * 1000), "parked records are due now, behind the head"
    # The head comes back from the retry topic and is sent: the dossier flows again.
    s.handle(item(1, dossier="A"))
    s.handle(item(2, dossier="A"))
    assert dispatcher.calls[-2:] == ["key-A-1", "key-A-2"]


def test_a_stale_hint_from_the_ledger_is_checked_and_dropped() -> None:
    parked = Parked()
    parked.reload({"A": {1}})
    checked: list[tuple[str, int]] = []

    def confirm(key: str, seq: int) -> bool:
        checked.append((key, seq))
        return False

    s, reports, _ = settler(Script(), parked=parked, confirm=confirm)
    s.handle(item(5, dossier="A"))
    assert reports[0].route == "done" and checked == [("A", 5)]
    assert len(parked) == 0


def test_a_confirmed_hint_holds_the_dossier_back() -> None:
    parked = Parked()
    parked.reload({"A": {1}})
    s, reports, _ = settler(Script(), parked=parked, confirm=lambda k, seq: True)
    s.handle(item(5, dossier="A"))
    assert present(reports[0].failure).reason == "parked"


def test_rebalance_drops_local_entries_of_revoked_partitions_only() -> None:
    parked = Parked()
    parked.add("A", 1, ("t", 0))
    parked.add("B", 2, ("t", 1))
    parked.reload({"C": {3}})
    parked.forget({("t", 0)})
    assert not parked.blocks("A", 9, lambda k, s: False)
    assert parked.blocks("B", 9, lambda k, s: False)
    assert parked.blocks("C", 9, lambda k, s: True)


def test_work_of_a_revoked_partition_is_handed_back_unsent() -> None:
    dispatcher = Script()
    s, reports, skipped = settler(dispatcher, current=lambda i: False)
    s.handle(item(1))
    assert dispatcher.calls == [] and reports == [] and len(skipped) == 1
