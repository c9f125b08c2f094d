"""Decode + transition + render throughput on one core, for 100,000 change events.

Prints events/s, the ratio to a ceiling measured in the same run (orjson.loads of
the same lines: the floor cost any decoder pays), and peak RSS. Target ≥ 20,000 events/s.
"""

from __future__ import annotations

import json
import resource

import orjson
import time

from bridge.pipeline import Pipeline
from bridge.samples import DayPlan, debezium_day
from bridge.settings import Settings
from bridge.transitions import MemoryStateStore

N = 100_000


def make_lines(n: int) -> list[str]:
    lines: list[str] = []
    day = 0
    while len(lines) < n:
        plan = DayPlan(seed=day, dossiers=2_000)
        for document in debezium_day(plan):
            document["after"]["id"] += day * 10_000  # distinct dossiers across days
            document["source"]["lsn"] += day * 10_000_000
            lines.append(json.dumps(document, ensure_ascii=False))
        day += 1
    return lines[:n]


def main() -> None:
    lines = make_lines(N)
    start = time.perf_counter()
    for text in lines:
        orjson.loads(text)
    ceiling = N / (time.perf_counter() - start)

    pipeline, store, notices = Pipeline(Settings()), MemoryStateStore(), 0
    start = time.perf_counter()
    for text in lines:
        event = pipeline.decode(text)
        if event is not None:
            notices += len(pipeline.notify(event, store))
    elapsed = time.perf_counter() - start
    rate = N / elapsed
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render: {N} events → {notices} notices in {elapsed:.2f}s")
    print(f"throughput: {rate:,.0f} events/s (target ≥ 20,000)")
    print(f"ceiling (orjson.loads of the same lines): {ceiling:,.0f} lines/s; ratio {rate / ceiling:.3f}")
    print(f"peak RSS: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
