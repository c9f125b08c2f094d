"""`onestop-bridge dlq list|show|replay` against the real broker."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from confluent_kafka import Producer
from events import event, row
from loop_harness import FakeDispatcher, Running, create_topics, make_settings, produce, read_all
from waiting import wait_for

from bridge.consume.records import SourceRecord
from bridge.dlq import cli
from bridge.dlq.producer import Failure, OutcomeProducer
from bridge.ledger import Ledger
from bridge.settings import KafkaSettings

pytestmark = pytest.mark.services
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" /
                     "dlq-record.schema.json").read_text())


def doc(i: int, **changes) -> dict:
    return event("c", row(id=i, code=f"000.00.23.H39-240612-{i:04d}", **changes))


def config_file(tmp_path: Path, broker, topic: str) -> str:
    path = tmp_path / "bridge.toml"
    path.write_text(f'[source]\ntopic = "{topic}"\n[kafka]\nbootstrap_servers = "{broker.bootstrap}"\n'
                    f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n', encoding="utf-8")
    return str(path)


def dead_letter(broker, topic: str, items: list[tuple[dict | bytes, Failure]]) -> None:
    outcomes = OutcomeProducer(Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"}),
                               KafkaSettings(), lambda _t: 2)
    acked: list[int] = []
    for n, (document, failure) in enumerate(items):
        value = document if isinstance(document, bytes) else json.dumps(document).encode()
        record = SourceRecord(topic, 0, n, b'{"id": %d}' % n, value, [("trace", b"abc")])
        outcomes.dead_letter(record, failure, on_durable=lambda: acked.append(1))

    def all_acknowledged() -> bool:
        outcomes.service(0.1)
        return len(acked) == len(items)

    wait_for(all_acknowledged, timeout=20)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def dlq(broker, unique_name, tmp_path):
    topic = unique_name
    create_topics(broker, topic)
    dead_letter(broker, topic, [
        (b"{not json", Failure("malformed_event", "BadInputError", "not JSON", "decode")),
        (doc(1, status=2), Failure("no_recipient", "RecipientError", "no phone", "deliver",
                                   kind="RECEIVED", dossier_code="000.00.23.H39-240612-0001")),
        (doc(2, status=5), Failure("channels_refused", "RecipientError", "zns: not existed",
                                   "deliver", code=-118, kind="SUPPLEMENT_REQUESTED",
                                   dossier_code="000.00.23.H39-240612-0002")),
        (doc(3, status=77), Failure("bad_input", "BadInputError", "status 77", "notify")),
    ])
    return topic, config_file(tmp_path, broker, topic)


def test_list_filters_by_error_kind_dossier_and_time(dlq, capsys) -> None:
    topic, config = dlq
    code, out, err = run_cli(["--config", config, "list", "--json"], capsys)
    assert code == 0 and len(out.splitlines()) == 4 and "4 of 4 records" in err
    by = lambda *f: [json.loads(line)["offset"] for line in  # noqa: E731
                     run_cli(["--config", config, "list", "--json", *f], capsys)[1].splitlines()]
    assert by("--error", "-118") == [2]
    assert by("--error", "RecipientError") == [1, 2]
    assert by("--error", "malformed_event") == [0]
    assert by("--kind", "received") == [1]
    # The dossier code comes from the header, or from the value when there is none.
    assert by("--dossier", "000.00.23.H39-240612-0003") == [3]
    assert by("--since", "2000-01-01T00:00:00Z") == [0, 1, 2, 3]
    assert by("--until", "2000-01-01T00:00:00Z") == []
    code, out, _ = run_cli(["--config", config, "list"], capsys)
    assert "channels_refused" in out and "000.00.23.H39-240612-0002" in out
    # The runbook's order, --config after the command, reads the same settings.
    assert run_cli(["list", "--config", config, "--error", "-118"], capsys)[:2] == \
        run_cli(["--config", config, "list", "--error", "-118"], capsys)[:2]


def test_a_time_copied_from_list_means_the_same_moment_to_since(dlq, capsys, monkeypatch) -> None:
    """On a host in Asia/Ho_Chi_Minh: list's times used to be UTC without their offset, and
    --since reads such a time as local, seven hours off."""
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        _, config = dlq
        out = run_cli(["--config", config, "list"], capsys)[1]
        shown = [line.split()[1] for line in out.splitlines()]
        exact = [json.loads(line)["time"] for line in
                 run_cli(["--config", config, "list", "--json"], capsys)[1].splitlines()]
        assert shown[0].endswith("+07:00")
        assert [cli._moment(t) for t in shown] == \
            [datetime.fromisoformat(t).replace(microsecond=0) for t in exact]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_show_prints_one_record_fully_and_matches_the_schema(dlq, capsys) -> None:
    _, config = dlq
    code, out, _ = run_cli(["--config", config, "show", "0:2"], capsys)
    assert code == 0
    shown = json.loads(out)
    jsonschema.validate(shown, SCHEMA)
    assert shown["value"]["after"]["status"] == 5
    assert shown["key"] == {"id": 2}
    assert shown["headers"]["onestop.error.code"] == "-118"
    assert shown["headers"]["trace"] == "abc", "the original headers are kept"
    assert run_cli(["--config", config, "show", "0:99"], capsys)[0] == 2


def test_replay_dry_run_produces_nothing(dlq, broker, capsys) -> None:
    topic, config = dlq
    code, out, err = run_cli(["--config", config, "replay", "--error", "RecipientError",
                              "--dry-run"], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(a["dlq_offset"], a["dry_run"], a["result"]) for a in lines] == [
        (1, True, "dry_run"), (2, True, "dry_run")]
    assert "2/2" in err
    assert read_all(broker, topic) == []


def test_replaying_many_records_needs_a_confirmation(broker, unique_name, tmp_path, capsys,
                                                     monkeypatch) -> None:
    topic = unique_name
    create_topics(broker, topic)
    dead_letter(broker, topic, [(doc(i, status=2), Failure("no_recipient", "RecipientError",
                                                           "no phone", "deliver"))
                                for i in range(12)])
    config = config_file(tmp_path, broker, topic)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    code, out, err = run_cli(["--config", config, "replay"], capsys)
    assert code == 2 and "--yes" in err and out == ""
    assert read_all(broker, topic) == []
    code, out, _ = run_cli(["--config", config, "replay", "--yes", "--limit", "11",
                            "--audit-log", str(tmp_path / "audit.jsonl")], capsys)
    assert code == 0 and len(out.splitlines()) == 11
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 11
    republished = read_all(broker, topic)
    assert len(republished) == 11
    # The oldest eleven, whichever partitions the replays landed on.
    assert sorted(int(dict(r.headers())["onestop.replayed-from"].split(b":")[1])
                  for r in republished) == list(range(11))
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM replay_audit").scalar() == 11
    ledger.close()


def test_replay_after_a_fix_delivers_exactly_once(broker, unique_name, tmp_path, capsys) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)
    fixed = {"yes": False}

    def refuse_until_fixed(n, call_no):
        from bridge.errors import RecipientError
        if n.dossier_code.endswith("0001") and not fixed["yes"]:
            raise RecipientError("no reachable recipient")
        return None

    fake = FakeDispatcher(script=refuse_until_fixed)
    produce(broker, topic, [doc(1, status=2), doc(2, status=2)],
            key=lambda d: f'{{"id": {d["after"]["id"]}}}'.encode())
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(read_all(broker, topic + ".dlq")) == 1, timeout=60, message="DLQ")
        assert fake.sent_codes() == ["000.00.23.H39-240612-0002"]
        fixed["yes"] = True  # e.g. the citizen's number was corrected
        config = config_file(tmp_path, broker, topic)
        for _ in range(2):  # a double replay must not double-send
            assert run_cli(["--config", config, "replay", "--yes"], capsys)[0] == 0
        wait_for(lambda: len(fake.sent) == 2, timeout=60, message="the replayed notice")
        wait_for(lambda: running.loop.tracker.outstanding() == 0, timeout=20)
    finally:
        running.stop()
    assert sorted(fake.sent_codes()) == ["000.00.23.H39-240612-0001", "000.00.23.H39-240612-0002"]


def test_a_phone_typed_after_the_dead_letter_is_used_by_the_replay(broker, unique_name, tmp_path,
                                                                   capsys) -> None:
    """No phone at the desk: `no_recipient`. The desk adds it (no status change, so no
    notice); `dlq replay` then reaches the citizen on that phone — it re-dead-lettered
    the notice, phone still empty, in a soak."""
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path)

    def needs_a_phone(n, call_no):
        from bridge.errors import RecipientError
        if n.phone is None:
            raise RecipientError("no reachable recipient")
        return None

    fake = FakeDispatcher(script=needs_a_phone)
    key = lambda d: f'{{"id": {d["after"]["id"]}}}'.encode()  # noqa: E731
    produce(broker, topic, [doc(1, status=2, applicant_phone=None)], key=key)
    running = Running(settings, fake)
    try:
        wait_for(lambda: len(read_all(broker, topic + ".dlq")) == 1, timeout=60, message="DLQ")
        fixed = event("u", row(id=1, code="000.00.23.H39-240612-0001", status=2,
                               applicant_phone="0909 123 456"))
        produce(broker, topic, [fixed], key=key)
        wait_for(lambda: running.loop.tracker.outstanding() == 0 and
                 running.ledger.counts() == {"dead": 1}, timeout=30, message="the fix admitted")
        assert run_cli(["--config", config_file(tmp_path, broker, topic), "replay", "--yes"],
                       capsys)[0] == 0
        wait_for(lambda: fake.sent, timeout=60, message="the replayed notice")
    finally:
        running.stop()
    assert [(n.dossier_code, n.phone) for n in fake.sent] == [("000.00.23.H39-240612-0001",
                                                               "84909123456")]


def test_the_tools_log_lines_are_masked_like_the_services(dlq, capsys) -> None:
    """A replay's warnings (and librdkafka's, through the same logger) name dossiers, not
    phones: the tool installs the services' redacting handler."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        assert run_cli(["--config", dlq[1], "list"], capsys)[0] == 0
        logging.getLogger("bridge.dlq.replay").warning("could not replay for 0912345678")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert "could not replay" in err and "0912345678" not in err
