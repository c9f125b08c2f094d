"""Benchmark of `onestop-bridge capture` (pgoutput): commit → Kafka acknowledgement.

Starts its own throwaway PostgreSQL and tansu broker (bridge/embedded.py), runs the
connector in-process with an acknowledgement hook, and reports:

1. throughput: 100,000 row changes (100 transactions × 1,000 rows) from the first commit
   to the last Kafka acknowledgement, with p50/p99 commit-to-ack latency under that load;
2. ceiling: the same 100,000 records (read back from the topic) produced again, raw, with
   the same producer settings — the rate Kafka + librdkafka allow on this machine; the
   ratio capture/ceiling is printed (target ≥ 50 %);
3. paced: 200 changes/s (single-row transactions) for 15 s, p50/p99 latency (target
   p99 < 500 ms);
4. one 100,000-row transaction: rate and peak RSS (rows are streamed, not buffered).

Run: .venv/bin/python bench/capture.py [--rows 100000] [--paced-seconds 15]
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from bridge import metrics  # noqa: E402
from bridge.embedded import EmbeddedBroker, EmbeddedPostgres  # noqa: E402
from bridge.settings import load_settings  # noqa: E402
from connectors.capture import PgCapture  # noqa: E402
from connectors.delivery import producer_config  # noqa: E402

COLUMNS = ("code", "procedure_code", "procedure_name", "agency_name", "applicant_name",
           "applicant_phone", "status", "received_at", "due_at", "fee_amount")


class Acks:
    """Commit-to-ack latency of every acknowledged record (the connector's ack hook)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, commit_ts: float) -> None:
        now = time.time()
        self.latencies.append(now - commit_ts)
        self.last = now

    def reset(self) -> None:
        self.latencies = []

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.latencies) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.latencies)}/{count} acknowledged")
            time.sleep(0.01)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def copy_rows(conn, start: int, count: int) -> None:
    lines = "".join(
        f"BENCH-{i:07d}\t1.001234\tCấp giấy phép xây dựng\tUBND huyện Bến Lức\tNguyễn Văn An\t"
        f"0909{i % 1000000:06d}\t{1 + i % 10}\t2024-06-12 08:30:00+07\t2024-06-20 17:00:00+07\t"
        f"{150000 + i % 1000}.50\n" for i in range(start, start + count))
    with conn.cursor() as cur:
        cur.copy_from(io.StringIO(lines), "dossiers", columns=COLUMNS)
    conn.commit()


def throughput(conn, acks: Acks, rows: int, per_tx: int, offset: int = 0) -> dict[str, float]:
    acks.reset()
    first_commit = None
    for start in range(offset, offset + rows, per_tx):
        copy_rows(conn, start, per_tx)
        first_commit = first_commit or time.time()
    acks.wait(rows, timeout=600)
    elapsed = acks.last - first_commit
    return {"rate": rows / elapsed, "p50": pct(acks.latencies, 0.5), "p99": pct(acks.latencies, 0.99),
            "seconds": elapsed}


def read_back(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-readback",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    records: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 120
    while len(records) < count and time.monotonic() < deadline:
        for msg in consumer.consume(10000, 1.0):
            if not msg.error():
                records.append((msg.key(), msg.value()))
    consumer.close()
    return records[:count]


def ceiling(config: dict, records: list[tuple[bytes | None, bytes | None]]) -> float:
    producer = Producer(config)
    producer.produce("bench.ceiling.warmup", b"x")
    producer.flush(10)
    start = time.time()
    for key, value in records:
        while True:
            try:
                producer.produce("bench.ceiling", key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return len(records) / (time.time() - start)


def paced(dsn_conn, acks: Acks, per_second: int, seconds: float) -> dict[str, float]:
    dsn_conn.autocommit = True
    acks.reset()
    total = int(per_second * seconds)
    start = time.monotonic()
    with dsn_conn.cursor() as cur:
        for n in range(total):
            delay = start + n / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if n % 2:
                cur.execute("UPDATE dossiers SET status = %s, updated_at = now() WHERE code = %s",
                            (1 + n % 10, f"BENCH-{n:07d}"))
            else:
                cur.execute("INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, "
                            "applicant_name, status) VALUES (%s, '1.1', 'P', 'A', 'Lê Văn C', 1)",
                            (f"PACED-{n:07d}",))
    acks.wait(total, timeout=60)
    return {"p50": pct(acks.latencies, 0.5), "p99": pct(acks.latencies, 0.99),
            "max": max(acks.latencies) * 1000, "count": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pg, broker = EmbeddedPostgres().start(), EmbeddedBroker().start()
    stop = threading.Event()
    try:
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute((ROOT / "schemas" / "reference.sql").read_text())
        conn.autocommit = False
        settings = load_settings(None, source={"dsn": pg.dsn, "topic_prefix": "bench", "slot": "bench",
                                               "publication": "bench", "heartbeat_interval_s": 0},
                                 kafka={"bootstrap_servers": broker.bootstrap})
        acks = Acks()
        capture = PgCapture(settings, stop, ack_listener=acks)
        thread = threading.Thread(target=capture.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while metrics.capture_connected._value.get() != 1:  # noqa: SLF001 - bench only
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("capture did not start streaming")
            time.sleep(0.05)
        rss_start = peak_rss_mb()

        load = throughput(conn, acks, args.rows, 1000)
        rss_after_load = peak_rss_mb()
        print(f"capture: {args.rows} changes (100 tx x 1,000 rows) in {load['seconds']:.2f}s "
              f"= {load['rate']:,.0f} rows/s commit->ack; latency under load "
              f"p50 {load['p50']:.0f} ms, p99 {load['p99']:.0f} ms")

        records = read_back(broker.bootstrap, "bench.public.dossiers", args.rows)
        raw = ceiling(producer_config(settings.kafka, "bench-ceiling"), records)
        ratio = load["rate"] / raw
        print(f"ceiling: raw produce of the same {len(records)} records = {raw:,.0f} records/s; "
              f"capture/ceiling = {ratio:.0%} (target >= 50%) {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")

        slow = paced(pg.connect(), acks, 200, args.paced_seconds)
        print(f"paced: {slow['count']} changes at 200/s: commit->ack p50 {slow['p50']:.1f} ms, "
              f"p99 {slow['p99']:.1f} ms, max {slow['max']:.1f} ms (target p99 < 500 ms) "
              f"{'OK' if slow['p99'] < 500 else 'ABOVE TARGET'}")

        big = throughput(conn, acks, args.rows, args.rows, offset=args.rows)
        print(f"one {args.rows:,}-row transaction: {big['rate']:,.0f} rows/s; "
              f"peak RSS {rss_start:.0f} MB at start, {rss_after_load:.0f} MB after the first "
              f"run, {peak_rss_mb():.0f} MB after the large transaction (bench process, "
              f"connector included)")
        return 0
    finally:
        stop.set()
        pg.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
