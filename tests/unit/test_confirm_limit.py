"""The confirmation bound (connectors.offsets.ConfirmLimit), without Kafka or PostgreSQL.

The slot may be confirmed only up to a bound Kafka acknowledged first; a slot found past
the last bound was moved by someone else (re-created at a failover, advanced by hand).
"""

from __future__ import annotations

import json
from typing import Any

from bridge.settings import load_settings
from connectors.delivery import producer_config
from connectors.offsets import ConfirmLimit, OffsetStore

COMPLETED = {"slot": "onestop_bridge", "snapshot_completed": True, "switch_lsn": 50}


class FakeProducer:
    """Keeps what was produced; `answer()` delivers the oldest, as Kafka would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], Any]] = []
        self.full = False  # librdkafka's queue: produce() raises BufferError

    def produce(self, topic: str, value: bytes, _key: bytes, _partition: int, callback: Any) -> None:
        if self.full:
            raise BufferError("Local: Queue full")
        self.sent.append((topic, json.loads(value), callback))

    def answer(self, error: Any = None) -> None:
        _topic, _value, callback = self.sent.pop(0)
        callback(error, None)

    def flush(self, _timeout: float) -> int:
        while self.sent:
            self.answer()
        return 0


def _limit(record: dict[str, Any] | None = COMPLETED, enabled: bool = True) -> ConfirmLimit:
    kafka = load_settings(None, kafka={"bootstrap_servers": "127.0.0.1:1"}).kafka
    store = OffsetStore(kafka, producer_config(kafka), "onestop")
    store.record = dict(record) if record is not None else None
    limit = ConfirmLimit(store, enabled)
    limit.loaded(store.record)
    return limit


def test_the_slot_waits_for_the_bound_and_only_one_is_asked_at_a_time() -> None:
    limit, producer = _limit(), FakeProducer()
    assert limit.allow(100, producer) == 0  # nothing confirmed before Kafka holds a bound
    assert limit.allow(180, producer) == 0
    assert [value["confirm_limit"] for _t, value, _c in producer.sent] == [100]
    producer.answer()
    assert limit.allow(180, producer) == 100
    producer.answer()
    assert limit.allow(180, producer) == 180


def test_the_bound_is_written_into_the_completion_record() -> None:
    limit, producer = _limit(), FakeProducer()
    limit.allow(0x1_0000_0010, producer)
    topic, value, _callback = producer.sent[0]
    assert topic == "onestop.offsets"
    assert value == {**COMPLETED, "confirm_limit": 0x1_0000_0010, "confirm_limit_text": "1/10"}
    producer.answer()
    assert limit.store.record == value  # the next bound builds on it


def test_a_refused_bound_is_asked_for_again_and_confirms_nothing() -> None:
    limit, producer = _limit(), FakeProducer()
    limit.allow(100, producer)
    producer.answer(error="MSG_TIMED_OUT")
    assert limit.acked == 0
    assert limit.allow(100, producer) == 0 and len(producer.sent) == 1


def test_an_answer_that_never_comes_is_asked_for_again() -> None:
    limit, producer = _limit(), FakeProducer()
    limit.allow(100, producer)
    producer.sent.clear()  # e.g. purged with a replaced producer
    limit.ANSWER_WITHIN_S = 0.0
    limit.allow(100, producer)
    assert len(producer.sent) == 1


def test_a_slot_past_the_bound_was_moved_by_someone_else() -> None:
    limit = _limit({**COMPLETED, "confirm_limit": 500})
    assert not limit.passed_by(500) and not limit.passed_by(400)
    assert limit.passed_by(501)
    assert not limit.passed_by(None)


def test_no_bound_known_means_no_verdict() -> None:
    assert not _limit(COMPLETED).passed_by(10**9)  # a record from before bounds existed
    assert not _limit({**COMPLETED, "confirm_limit": 500}, enabled=False).passed_by(10**9)


def test_without_a_record_to_extend_the_slot_is_not_held_back() -> None:
    producer = FakeProducer()
    assert _limit(None).allow(100, producer) == 100
    assert _limit(enabled=False).allow(100, producer) == 100  # snapshot_mode=no_data
    assert producer.sent == []


def test_a_stop_writes_the_last_bound_and_waits_for_it() -> None:
    limit, producer = _limit({**COMPLETED, "confirm_limit": 100}), FakeProducer()
    assert limit.settle(250, producer) == 250
    assert limit.settle(250, producer) == 250 and producer.sent == []  # nothing more to write


def test_a_full_queue_in_a_backlog_delays_the_bound_and_ends_nothing() -> None:
    limit, producer = _limit(), FakeProducer()
    producer.full = True
    assert limit.allow(100, producer) == 0  # no exception: streaming goes on
    producer.full = False
    assert limit.allow(100, producer) == 0 and len(producer.sent) == 1  # asked at the next turn
