"""Which worker a dossier's notifications go to (bridge/consume/records.py)."""

from __future__ import annotations

import zlib
from collections import Counter

from bridge.consume.records import SourceRecord

WORKERS, PARTITIONS = 8, 4


def record(key: bytes | None) -> SourceRecord:
    return SourceRecord("onestop.public.dossiers", 0, 0, key, b"{}")


def test_one_partitions_dossiers_reach_every_worker() -> None:
    # librdkafka's default partitioner (our connector's producer) puts a key in
    # partition crc32(key) % partitions; a consumer often reads one partition at a time.
    keys = [b'{"id":%d}' % i for i in range(8_000)]
    partition0 = [k for k in keys if zlib.crc32(k) % PARTITIONS == 0]
    load = Counter(record(k).routing_hash() % WORKERS for k in partition0)
    assert set(load) == set(range(WORKERS))
    assert min(load.values()) > len(partition0) / WORKERS * 0.8


def test_a_dossier_always_goes_to_the_same_worker() -> None:
    key = b'{"id":42}'
    assert record(key).routing_hash() == record(key).routing_hash()
    assert record(None).routing_hash() == record(b"").routing_hash()
