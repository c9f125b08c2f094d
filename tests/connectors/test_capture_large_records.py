"""A row whose record is larger than Kafka takes (a scanned document, a long note).

Retrying cannot send it and skipping it would lose the change, so capture stops with the
fix (exit 2) and the slot keeps the change; after the fix nothing is missing or reordered.
"""

from __future__ import annotations

import re

import pytest
from kafka import TopicPartition

from capture_support import insert_dossier
from connectors.delivery import RecordTooLarge
from waiting import wait_for

pytestmark = pytest.mark.services
NOTE = "Biên bản kiểm tra hiện trạng. " * 50_000  # ~1.6 MB of UTF-8


def test_a_record_too_large_stops_capture_with_the_fix_and_loses_nothing(
        capture_db, start_capture, reader) -> None:
    capture = start_capture(capture_db.settings())
    topic = reader()
    wait_for(lambda: capture.alive(), timeout=30, message="capture started")
    conn = capture_db.connect()
    insert_dossier(conn, "SMALL-1")
    big = insert_dossier(conn, "BIG", note=NOTE)
    insert_dossier(conn, "SMALL-2")
    wait_for(lambda: capture.error is not None, timeout=60, message="capture stops on the large record")
    capture.thread.join(30)
    assert isinstance(capture.error, RecordTooLarge) and not capture.thread.is_alive()
    message = str(capture.error)
    assert re.search(rf'a record for {capture_db.topic} \(key {{"id":{big}}}\) is [\d,]{{9}} bytes, '
                     r"more than the producer takes \(producer message.max.bytes 1000000, the "
                     r"default\)", message), message
    assert "max.message.bytes" in message and "ALTER PUBLICATION" in message
    topic.wait(lambda r: any(x.value["after"]["code"] == "SMALL-1" for x in r), message="SMALL-1")
    partitions = topic.consumer.partitions_for_topic(capture_db.topic)
    ends = topic.consumer.end_offsets([TopicPartition(capture_db.topic, p) for p in partitions])
    assert sum(ends.values()) == 1  # SMALL-1 only: nothing after the large row went out

    # The operator raises the limit (this broker takes it): the large row and the rest arrive.
    start_capture(capture_db.settings(kafka_extra={"message.max.bytes": 5_000_000}))
    # Both: the large row's partition may be fetched after SMALL-2's (it failed so once).
    records = topic.wait(lambda r: {"BIG", "SMALL-2"} <= {x.value["after"]["code"] for x in r},
                         timeout=60, message="the large row and the rows after it")
    [large] = [x for x in records if x.value["after"]["code"] == "BIG"]
    assert large.value["after"]["note"] == NOTE and large.key == {"id": big}
    assert [x.value["after"]["code"] for x in records].count("SMALL-2") == 1
    conn.close()
