"""Admission: a change event is turned into notifications once, whatever the redelivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy
from events import event, present, row

from bridge.dispatch.outcome import Attempt, DeliveryOutcome
from bridge.errors import BadInputError
from bridge.ledger import Incoming, Ledger, retention
from bridge.ledger.retention import Pass, Position
from bridge.ledger.tables import DEAD, DEFERRED, FAILED, SENT
from bridge.model import Dossier
from bridge.pipeline import Pipeline
from bridge.settings import Settings
from bridge.transitions import load_state

PIPELINE = Pipeline(Settings())


def incoming(document: dict, *, replay: bool = False) -> Incoming:
    ev = PIPELINE.decode(json.dumps(document).encode())
    assert ev is not None
    return Incoming(ev, PIPELINE.event_id(ev), PIPELINE.dossier_key(ev), replay=replay)


def sent(channel: str = "zns", price: int = 150) -> DeliveryOutcome:
    at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    return DeliveryOutcome("sent", channel, "msg-1", price,
                           [Attempt("zalo_oa", "permanent", -213, "not a follower", at),
                            Attempt(channel, "ok", None, None, at, price)])


def test_new_event_gives_pending_notifications_and_records_state(ledger: Ledger) -> None:
    [admission] = ledger.admit([incoming(event("c", row(status=2)))], PIPELINE.notify)
    assert admission.error is None and not admission.duplicate
    [stored] = admission.to_send
    assert stored.status == "pending" and stored.notification.kind == "RECEIVED"
    assert stored.notification.phone == "84909123456"
    again = ledger.get(stored.key)
    assert again is not None and (again.seq, again.status, again.notification.text) == (
        stored.seq, "pending", stored.notification.text)
    assert ledger.counts() == {"pending": 1}


def test_the_same_event_twice_hands_out_the_same_notification(ledger: Ledger) -> None:
    doc = event("c", row(status=2))
    [first] = ledger.admit([incoming(doc)], PIPELINE.notify)
    [again] = ledger.admit([incoming(doc)], PIPELINE.notify)
    assert again.duplicate
    assert [s.key for s in again.to_send] == [s.key for s in first.to_send]
    assert ledger.counts() == {"pending": 1}


def test_once_sent_a_redelivered_event_sends_nothing(ledger: Ledger) -> None:
    doc = event("c", row(status=2))
    [first] = ledger.admit([incoming(doc)], PIPELINE.notify)
    ledger.record_sent(first.to_send[0].key, sent())
    [again] = ledger.admit([incoming(doc)], PIPELINE.notify)
    assert again.duplicate and again.to_send == []
    stored = ledger.get(first.to_send[0].key)
    assert stored is not None and stored.status == SENT


def test_batches_of_every_size_hand_out_each_notification_once(ledger: Ledger) -> None:
    """Batch sizes vary with the load; on SQLite the SQL they run must not (each distinct
    text is a prepared statement cached in every pooled connection: memory grew)."""
    texts: set[str] = set()
    sqlalchemy.event.listen(ledger.engine, "before_cursor_execute",
                            lambda _conn, _cursor, statement, *_rest: texts.add(statement))
    first = 1
    for size in range(1, 71):
        ids = range(first, first + size)
        batch = [incoming(event("c", row(id=i, code=f"000.00.23.H39-240612-{i:04d}", status=2),
                                lsn=1000 + i)) for i in ids]
        admissions = ledger.admit(batch, PIPELINE.notify)
        assert [len(a.to_send) for a in admissions] == [1] * size
        assert [a.to_send[0].notification.dossier_code for a in admissions] == [
            f"000.00.23.H39-240612-{i:04d}" for i in ids]
        first += size
    assert ledger.counts() == {"pending": first - 1}
    if ledger.engine.dialect.name == "sqlite":  # psycopg2 keeps no prepared statements
        assert len(texts) <= 30, f"{len(texts)} distinct statements for 70 batch sizes"


def test_duplicates_inside_one_batch(ledger: Ledger) -> None:
    doc = event("c", row(status=2))
    a, b = ledger.admit([incoming(doc), incoming(doc)], PIPELINE.notify)
    assert not a.duplicate and b.duplicate
    assert [s.key for s in a.to_send] == [s.key for s in b.to_send]


def test_state_carries_across_events_of_one_batch(ledger: Ledger) -> None:
    # Without `before`, the engine compares against the stored state: 2 → 2 is no news.
    batch = [incoming(event("c", row(status=2))), incoming(event("u", row(status=2))),
             incoming(event("u", row(status=9, finished_at="2024-06-19T02:00:00Z")))]
    kinds = [[s.notification.kind for s in a.to_send] for a in ledger.admit(batch, PIPELINE.notify)]
    assert kinds == [["RECEIVED"], [], ["RESULT_READY"]]


def test_bad_input_rolls_back_that_event_only(ledger: Ledger) -> None:
    batch = [incoming(event("c", row(status=2))),
             incoming(event("u", row(status=77))),          # unmapped status
             incoming(event("u", row(status=5, note="Bổ sung bản sao CCCD")))]
    ok, bad, later = ledger.admit(batch, PIPELINE.notify)
    assert isinstance(bad.error, BadInputError) and bad.to_send == []
    # The bad event neither changed the state nor was marked seen: 2 → 5 is a transition.
    assert [s.notification.kind for s in later.to_send] == ["SUPPLEMENT_REQUESTED"]
    [again] = ledger.admit([batch[1]], PIPELINE.notify)
    assert again.error is not None and not again.duplicate


def test_replay_gives_dead_notifications_another_chance_but_never_resends(ledger: Ledger) -> None:
    received, result = event("c", row(status=2)), event("u", row(status=9))
    a, b = ledger.admit([incoming(received), incoming(result)], PIPELINE.notify)
    ledger.record_sent(a.to_send[0].key, sent())
    ledger.record_unsent(b.to_send[0].key, DEAD, error_class="RecipientError",
                         error_message="every channel refused")
    [plain] = ledger.admit([incoming(result)], PIPELINE.notify)
    assert plain.to_send == [], "a dead notification is not retried by a plain redelivery"
    [replayed_sent] = ledger.admit([incoming(received, replay=True)], PIPELINE.notify)
    assert replayed_sent.to_send == [], "a sent notification stays sent"
    [replayed] = ledger.admit([incoming(result, replay=True)], PIPELINE.notify)
    assert [s.status for s in replayed.to_send] == ["pending"]


def test_outcomes_and_attempts_are_recorded(ledger: Ledger) -> None:
    [a] = ledger.admit([incoming(event("c", row(status=2)))], PIPELINE.notify)
    key = a.to_send[0].key
    assert ledger.record_unsent(key, FAILED, error_class="TransportError", error_message="timeout",
                                count_round=True) == 1
    assert ledger.record_unsent(key, DEFERRED, error_class="DeferError", error_message="night") == 1
    assert ledger.parked() == {a.to_send[0].dossier_key: {a.to_send[0].seq}}
    ledger.record_sent(key, sent())
    assert ledger.parked() == {}
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT channel, result, price_vnd, provider_message_id, error_code "
            "FROM delivery_attempts ORDER BY id").all()
        note = conn.exec_driver_sql(
            "SELECT status, channel, price_vnd, provider_message_id, error_class "
            "FROM notifications").one()
    assert [tuple(r) for r in rows] == [("zalo_oa", "permanent", 0, None, "-213"),
                                        ("zns", "ok", 150, "msg-1", None)]
    assert tuple(note) == ("sent", "zns", 150, "msg-1", None)


def test_earlier_parked_is_per_dossier_and_ordered(ledger: Ledger) -> None:
    first, second = ledger.admit([incoming(event("c", row(status=2))),
                                  incoming(event("u", row(status=5, note="x")))], PIPELINE.notify)
    one, two = first.to_send[0], second.to_send[0]
    assert not ledger.earlier_parked(two.dossier_key, two.seq)
    ledger.record_unsent(one.key, DEFERRED, error_class="DeferError", error_message="night")
    assert ledger.earlier_parked(two.dossier_key, two.seq)
    assert not ledger.earlier_parked(one.dossier_key, one.seq)
    assert not ledger.earlier_parked("another-dossier", two.seq)


def test_prune_forgets_old_event_ids_only(ledger_url: str) -> None:
    now = [1_800_000_000.0]
    ledger = Ledger.open(ledger_url, clock=lambda: now[0])
    try:
        doc = event("c", row(status=2))
        [a] = ledger.admit([incoming(doc)], PIPELINE.notify)
        ledger.record_sent(a.to_send[0].key, sent())
        now[0] += 40 * 86400
        assert ledger.prune_events(older_than_s=30 * 86400) == 1
        # Seen again after pruning: the state says "no change", and the notification row
        # (same idempotency key) still knows it was sent.
        [again] = ledger.admit([incoming(doc)], PIPELINE.notify)
        assert again.to_send == []
        assert ledger.counts() == {"sent": 1}
    finally:
        ledger.close()


def test_a_dossier_that_never_notified_is_found_by_its_code(ledger_url: str) -> None:
    # A snapshot read seeds the state without a notice: a dossier that existed before the
    # bridge was installed. A citizen looking it up by code must still find it.
    from bridge.citizen.dossiers import LedgerDossiers

    ledger = Ledger.open(ledger_url)
    try:
        code = "000.00.23.H39-240612-0042"
        ledger.admit([incoming(event("r", row(id=42, code=code, status=4), snapshot="true"))],
                     PIPELINE.notify)
        found = LedgerDossiers(ledger.engine).by_codes([code])
        assert found[code].code == code and found[code].status == 4
    finally:
        ledger.close()


def test_redaction_blanks_old_sent_notices_and_keeps_the_guard(ledger_url: str) -> None:
    """`ledger.redact_sent_after_days`: an old sent notice loses its text, data and phone;
    a recent one, and one still waiting (it must be sent as it is), keep theirs. A
    redelivered old event, its id long forgotten, still notifies no one."""
    now = [1_800_000_000.0]
    ledger = Ledger.open(ledger_url, clock=lambda: now[0])
    try:
        old_doc = event("c", row(status=2))
        [old] = ledger.admit([incoming(old_doc)], PIPELINE.notify)
        [waiting] = ledger.admit([incoming(event("c", row(id=8, status=2)))], PIPELINE.notify)
        ledger.record_sent(old.to_send[0].key, sent())
        ledger.record_unsent(waiting.to_send[0].key, DEFERRED, error_class="DeferError",
                             error_message="night")
        now[0] += 200 * 86400
        [recent] = ledger.admit([incoming(event("c", row(id=9, status=2)))], PIPELINE.notify)
        ledger.record_sent(recent.to_send[0].key, sent())
        assert ledger.redact_sent(older_than_s=180 * 86400) == Pass(1, True)
        assert ledger.redact_sent(older_than_s=180 * 86400).redacted == 0  # done once
        with ledger.engine.connect() as conn:
            rows = {key: (text, phone, data, status, channel, price) for key, text, phone, data,
                    status, channel, price in conn.execute(sqlalchemy.text(
                        "SELECT idempotency_key, text, phone, template_data, status, channel, "
                        "price_vnd FROM notifications"))}
        assert rows[old.to_send[0].key] == ("", None, "{}", SENT, "zns", 150)
        for kept in (waiting, recent):
            text, phone, data = rows[kept.to_send[0].key][:3]
            assert "Nguyễn Văn An" in text and phone and data != "{}"
        assert ledger.prune_events(older_than_s=30 * 86400) == 2
        [again] = ledger.admit([incoming(old_doc)], PIPELINE.notify)
        assert again.to_send == []
        assert ledger.counts() == {"sent": 2, "deferred": 1}
    finally:
        ledger.close()


def _states(ledger: Ledger) -> dict[str, Dossier]:
    with ledger.engine.connect() as conn:
        return {key: load_state(text) for key, text in conn.execute(sqlalchemy.text(
            "SELECT dossier_key, state FROM dossier_state"))}


def test_redaction_forgets_who_closed_dossiers_belonged_to(ledger_url: str) -> None:
    """`ledger.redact_closed_after_days`: a dossier closed long ago loses its applicant's
    name, phone and note in the bridge's state; an open one (it may still change) and one
    closed recently keep them. The status stays, so a redelivered old event, its id long
    forgotten, still notifies no one."""
    now = [1_800_000_000.0]
    ledger = Ledger.open(ledger_url, clock=lambda: now[0])
    try:
        done = event("u", row(id=1, code="A-1", status=10, note="Ông An nhận thay"))
        ledger.admit([incoming(done), incoming(event("c", row(id=2, code="A-2", status=4)))],
                     PIPELINE.notify)
        now[0] += 200 * 86400
        ledger.admit([incoming(event("u", row(id=3, code="A-3", status=7)))], PIPELINE.notify)
        assert ledger.redact_closed(older_than_s=180 * 86400) == Pass(1, True)
        assert ledger.redact_closed(older_than_s=180 * 86400).redacted == 0  # done once
        states = {d.code: d for d in _states(ledger).values()}
        old = states["A-1"]
        assert (old.applicant_name, old.applicant_phone, old.note, old.status) == (None, None, None, 10)
        assert old.due_at == datetime(2024, 6, 20, 9, 0, tzinfo=UTC)
        for kept in ("A-2", "A-3"):
            assert (states[kept].applicant_name, states[kept].applicant_phone) == (
                "Nguyễn Văn An", "0909 123 456")
        ledger.prune_events(older_than_s=30 * 86400)
        [again] = ledger.admit([incoming(done)], PIPELINE.notify)
        assert again.to_send == []
    finally:
        ledger.close()


def test_a_redaction_pass_stops_at_its_budget_and_the_next_goes_on(ledger: Ledger) -> None:
    """A first pass over years of rows runs in the consumer loop: it must give the loop back."""
    admitted = ledger.admit([incoming(event("c", row(id=i, code=f"B-{i}", status=2)))
                             for i in range(7)], PIPELINE.notify)
    for a in admitted:
        ledger.record_sent(a.to_send[0].key, sent())
    cutoff, at = 2 ** 62, Position(0, 0)
    first = retention.redact_sent(ledger.engine, cutoff, at, batch=3, budget_s=0)
    assert first == Pass(3, False)
    rest = retention.redact_sent(ledger.engine, cutoff, at, batch=3, budget_s=60)
    assert rest == Pass(4, True)
    stored = [present(ledger.get(a.to_send[0].key)) for a in admitted]
    assert all(s.notification.phone is None and s.notification.text == "" for s in stored)


def test_a_replayed_notice_the_dossier_has_moved_past_stays_dead(ledger: Ledger) -> None:
    """A soak replayed 105 notices after a template fix: 47 citizens got "please add
    documents" after "your result is ready"."""
    received, supplement, ready = (event("c", row(status=2)), event("u", row(status=5)),
                                   event("u", row(status=9)))
    a, b, c = ledger.admit([incoming(received), incoming(supplement), incoming(ready)],
                           PIPELINE.notify)
    ledger.record_sent(a.to_send[0].key, sent())
    ledger.record_unsent(b.to_send[0].key, DEAD, error_class="BadInputError", error_message="-109")
    ledger.record_sent(c.to_send[0].key, sent())
    [replayed] = ledger.admit([incoming(supplement, replay=True)], PIPELINE.notify)
    assert replayed.to_send == []
    assert ledger.counts() == {"sent": 2, "dead": 1}


def test_a_replayed_notice_goes_to_the_phone_the_desk_added_since(ledger: Ledger) -> None:
    """No phone at the desk: dead-lettered no_recipient. The desk types it in (no status
    change, so no notice); the operator replays: the citizen hears, on that phone."""
    received = event("c", row(status=2, applicant_phone=None))
    [a] = ledger.admit([incoming(received)], PIPELINE.notify)
    assert a.to_send[0].notification.phone is None
    ledger.record_unsent(a.to_send[0].key, DEAD, error_class="RecipientError",
                         error_message="no reachable recipient")
    [fix] = ledger.admit([incoming(event("u", row(status=2, applicant_phone="0909 123 456")))],
                         PIPELINE.notify)
    assert fix.to_send == []
    [replayed] = ledger.admit([incoming(received, replay=True)], PIPELINE.notify)
    assert [(s.status, s.notification.phone) for s in replayed.to_send] == [("pending", "84909123456")]


def test_a_replay_after_fixing_the_phone_column_uses_the_number_read_now(ledger: Ledger) -> None:
    """`[source.columns] applicant_phone` named the wrong column: every notice dead-lettered
    without a phone, and the dossier states hold none. Fixed and replayed: the bridge
    reads the replayed event with today's mapping (`Incoming.phone`)."""
    received = event("c", row(status=2, applicant_phone=None))
    [a] = ledger.admit([incoming(received)], PIPELINE.notify)
    ledger.record_unsent(a.to_send[0].key, DEAD, error_class="RecipientError",
                         error_message="no reachable recipient")
    again = incoming(received, replay=True)
    [replayed] = ledger.admit([Incoming(again.event, again.event_id, again.dossier_key,
                                        replay=True, phone="84909123456")], PIPELINE.notify)
    assert [s.notification.phone for s in replayed.to_send] == ["84909123456"]
