"""Decode + transition + render throughput on one core, for 100,000 change events.

Prints events/s, the ratio to a ceiling measured in the same run (orjson.loads of
the same lines: the floor cost any decoder pays), and peak RSS. Target ≥ 20,000 events/s.
"On one core" is measured as CPU time of this single-threaded process, so that other
work on the machine does not count against it; wall-clock figures are printed too.
The collector is tuned as the `onestop-bridge` command tunes it (bridge.cli.tune_gc).
This VM's speed swings by a third with its neighbours' load, so the run is repeated
(interleaved with the ceiling) and the best and median are printed, as timeit does.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import orjson

from bridge import compiled
from bridge.cli import tune_gc
from bridge.pipeline import Pipeline
from bridge.samples import DayPlan, debezium_day
from bridge.settings import Settings
from bridge.transitions import MemoryStateStore

T = TypeVar("T")
N = 100_000
ROUNDS = 5


def make_lines(n: int) -> list[bytes]:
    """UTF-8 lines, as `render` reads its input (a file opened in binary) and Kafka gives values."""
    lines: list[bytes] = []
    day = 0
    while len(lines) < n:
        plan = DayPlan(seed=day, dossiers=2_000)
        for document in debezium_day(plan):
            document["after"]["id"] += day * 10_000  # distinct dossiers across days
            document["source"]["lsn"] += day * 10_000_000
            lines.append(json.dumps(document, ensure_ascii=False).encode())
        day += 1
    return lines[:n]


def timed(work: Callable[[], T]) -> tuple[float, float, T]:
    """(CPU seconds, wall seconds, result) of work()."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def render_all(lines: list[bytes]) -> int:
    """One pass as `onestop-bridge render` makes it: a fresh pipeline and state store."""
    pipeline, store, notices = Pipeline(Settings()), MemoryStateStore(), 0
    for text in lines:
        event = pipeline.decode(text)
        if event is not None:
            notices += len(pipeline.notify(event, store))
    return notices


def main() -> None:
    lines = make_lines(N)
    render_all(lines[:1000])  # warm-up: imports, template loading, caches
    tune_gc(batch=True)
    runs, ceilings = [], []
    for _ in range(ROUNDS):  # interleaved, so a noisy neighbour hits both alike
        ceilings.append(timed(lambda: deque(map(orjson.loads, lines), maxlen=0))[0])
        runs.append(timed(lambda: render_all(lines)))
    best_cpu, wall, notices = min(runs)
    rate, median = N / best_cpu, N / statistics.median(cpu for cpu, _, _ in runs)
    ceiling = N / min(ceilings)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"render: {N:,} events → {notices:,} notices; best of {ROUNDS} runs {best_cpu:.2f} s CPU "
          f"({wall:.2f} s wall); {'mypyc-compiled' if compiled() else 'pure Python'} hot path")
    print(f"throughput: {rate:,.0f} events/s on one core, median {median:,.0f} (target ≥ 20,000) "
          f"{'OK' if rate >= 20_000 else 'BELOW TARGET'}; wall clock {N / wall:,.0f} events/s")
    print(f"ceiling (orjson.loads of the same lines): {ceiling:,.0f} lines/s; ratio {rate / ceiling:.3f}")
    print(f"peak RSS: {rss_mb:.0f} MB (the 100,000 input lines are held in memory)")


if __name__ == "__main__":
    main()
