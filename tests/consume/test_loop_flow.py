"""Flow control: bounded in-flight work, graceful stop within the deadline, rebalances."""

from __future__ import annotations

import threading
import time

import pytest
from events import event, row
from loop_harness import FakeDispatcher, Running, create_topics, make_settings, produce
from waiting import wait_for

pytestmark = pytest.mark.services


def doc(i: int) -> dict:
    return event("c", row(id=i, code=f"000.00.23.H39-240612-{i:04d}", status=2))


def watch_outstanding(running: Running) -> list[int]:
    """Record the tracker's outstanding count every time a record is taken in."""
    peaks = [0]
    tracker = running.loop.tracker
    original = tracker.add

    def add(topic: str, partition: int, offset: int) -> None:
        original(topic, partition, offset)
        peaks[0] = max(peaks[0], tracker.outstanding())

    tracker.add = add  # type: ignore[method-assign]
    return peaks


def test_in_flight_work_never_exceeds_the_bound(broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path, max_in_flight=20, workers=2)
    produce(broker, topic, [doc(i) for i in range(1, 301)])
    fake = FakeDispatcher(delay_s=0.002)
    running = Running(settings, fake)
    peaks = watch_outstanding(running)
    try:
        wait_for(lambda: len(fake.sent) == 300, timeout=90, message="300 deliveries")
    finally:
        running.stop()
    assert 0 < peaks[0] <= 20
    assert len(set(fake.sent_codes())) == 300


def test_stop_hands_back_unstarted_work_within_the_deadline(broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path, max_in_flight=40, workers=2,
                             shutdown_deadline_s=4.0)
    produce(broker, topic, [doc(i) for i in range(1, 121)])
    slow = FakeDispatcher(delay_s=0.25)  # 2 workers × 4/s: far slower than the backlog
    running = Running(settings, slow)
    wait_for(lambda: len(slow.sent) >= 5, timeout=60, message="first deliveries")
    took = running.stop()
    assert took < 4.0 + 1.0, f"stop took {took:.1f}s"
    first = set(slow.sent_codes())
    assert len(first) < 120

    fast = FakeDispatcher()
    running = Running(settings, fast)
    try:
        wait_for(lambda: len(first) + len(fast.sent) >= 120, timeout=60, message="the rest")
        time.sleep(0.5)  # nothing more may arrive
    finally:
        running.stop()
    resent = first & set(fast.sent_codes())
    assert first | set(fast.sent_codes()) == {d["after"]["code"] for d in map(doc, range(1, 121))}
    assert not resent, f"sent twice after a clean stop: {sorted(resent)}"


def test_two_instances_share_the_partitions_and_send_each_notice_once(
        broker, unique_name, tmp_path) -> None:
    topic = unique_name
    create_topics(broker, topic, partitions=4)
    settings = make_settings(broker, topic, tmp_path, max_in_flight=30, workers=2)
    rebalanced = threading.Event()

    def until_the_rebalance(_n: object, _call: int) -> None:
        # Keeps `a` mid-stream until `b` joins (alone it finishes the 200 in well under a
        # second). Held, `a` fills up and pauses its partitions, so this also checks that
        # partitions paused before a rebalance flow again when assigned back after it.
        if len(a_fake.sent) >= 20 and not rebalanced.is_set():
            wait_for(lambda: rebalanced.is_set() or a.loop.revoking, timeout=60,
                     message="b's join revokes a's partitions")
            rebalanced.set()

    a_fake = FakeDispatcher(script=until_the_rebalance, delay_s=0.005)
    b_fake = FakeDispatcher(delay_s=0.005)
    a = Running(settings, a_fake)
    produce(broker, topic, [doc(i) for i in range(1, 201)])
    wait_for(lambda: len(a_fake.sent) >= 20, timeout=60, message="first instance busy")
    b = Running(settings, b_fake)  # joins: a rebalance while a is mid-stream
    try:
        wait_for(lambda: len(a_fake.sent) + len(b_fake.sent) >= 200, timeout=120,
                 message="all 200 across both")
        time.sleep(1.0)
    finally:
        stoppers = [threading.Thread(target=r.stop) for r in (a, b)]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(30)
    codes = a_fake.sent_codes() + b_fake.sent_codes()
    assert len(codes) == len(set(codes)) == 200
    assert b_fake.sent, "the second instance got partitions"


def test_a_stall_longer_than_the_poll_interval_keeps_the_partitions(
        broker, unique_name, tmp_path) -> None:
    """A full loop waits on its workers instead of polling, but not past max.poll.interval:
    librdkafka would leave the group and hand the partitions (and their work) to others."""
    topic = unique_name
    create_topics(broker, topic)
    settings = make_settings(broker, topic, tmp_path, max_in_flight=10, workers=2)
    settings.kafka.extra["max.poll.interval.ms"] = 7000
    upstream_back = threading.Event()

    def stall(*_: object) -> None:
        upstream_back.wait(60)

    stalled = FakeDispatcher(script=stall)
    produce(broker, topic, [doc(i) for i in range(1, 31)])
    running = Running(settings, stalled)
    try:
        wait_for(lambda: running.loop.tracker.outstanding() == 10, timeout=60,
                 message="the loop full of stalled work")
        time.sleep(9.0)  # the condition under test: stalled past max.poll.interval.ms
        upstream_back.set()
        wait_for(lambda: len(stalled.sent) >= 30, timeout=60, message="30 deliveries")
        rebalances = running.loop.rebalances  # the join's assignment only
    finally:
        running.stop()
    assert sorted(stalled.sent_codes()) == sorted(doc(i)["after"]["code"] for i in range(1, 31))
    assert rebalances == 1, "the member left the group during the stall"
