"""Benchmark of `onestop-bridge capture` (pgoutput): commit → Kafka acknowledgement.

Starts its own throwaway PostgreSQL and tansu broker (bridge/embedded.py), runs the
connector in-process with an acknowledgement hook, and reports:

1. live: 100,000 row changes (100 transactions × 1,000 rows) written as fast as PostgreSQL
   takes them, from the first commit to the last Kafka acknowledgement, with p50/p99
   commit-to-ack latency (this rate is bounded by how fast the database writes);
2. rounds (5 by default), each three phases measured back to back:
   - capacity: the connector stopped, 100,000 changes committed, the connector started:
     rows/s from the start of streaming to the last acknowledgement;
   - bound: the same changes read from a second slot by an ideal connector
     (bench/ideal_connector.py: the records ready-made, only reading and producing) —
     what any connector could reach here, PostgreSQL's walsender included;
   - ceiling: 100,000 of the same records (read back from the topic) produced again, raw,
     with the same producer settings — what Kafka + librdkafka allow on this machine;
   the ratio capacity/ceiling of each round, their median, and the best capacity against
   the best ceiling (target ≥ 50 %), and bound/ceiling the same way. The shared host's
   speed changes from one minute to the next, so the median is the typical pair, best
   against best the strict reading;
3. one 100,000-row transaction: rate, and peak RSS (rows are streamed, not buffered);
4. paced: 200 changes/s (single-row transactions) for 15 s, p50/p99 latency (target
   p99 < 500 ms);
5. incremental snapshot: the whole table (by then ~700,000 rows) read again on a signal,
   chunk by chunk while the connector streams: rows/s from the signal's commit to the last
   chunk's acknowledgement (`--no-incremental` leaves it out).

For each round it also prints where the CPU went, per row: the connector's thread,
librdkafka's threads, PostgreSQL's walsender and the broker (from /proc; the two vCPUs
are shared by all of them).

Each timed phase starts on warm memory (`warm_memory`): on a VM whose host backs guest
memory lazily and takes back what the guest frees, the first touch of a page costs ~6 µs,
and the broker keeps every record in memory (~0.8 kB each). Without it, later rounds pay
that in both phases alike — a fixed cost that weighs more on the shorter raw phase, so
their ratios came out up to a third higher than on a server whose memory is resident.

Run: .venv/bin/python bench/capture.py [--rows 100000] [--rounds 5] [--paced-seconds 15]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2.errors  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from bridge import metrics  # noqa: E402
from bridge.embedded import EmbeddedBroker, EmbeddedPostgres  # noqa: E402
from bridge.settings import load_settings  # noqa: E402
from connectors.capture import PgCapture  # noqa: E402
from connectors.delivery import producer_config  # noqa: E402

import ideal_connector  # noqa: E402

SLOT = "bench"  # the slot, publication and topic prefix of this run
BOUND_SLOT = "bench_bound"  # the ideal connector's copy of each capacity phase's changes


class Acks:
    """Commit-to-ack latency of every acknowledged record (the connector's ack hook).

    The hook is called once per transaction, when Kafka has acknowledged all its records:
    each record counts with its transaction's latency, which is the latest of them.
    """

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.last = 0.0

    def __call__(self, commit_ts: float, records: int) -> None:
        now = time.time()
        self.latencies.extend([now - commit_ts] * records)
        self.last = now

    def reset(self) -> None:
        self.latencies = []

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.latencies) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.latencies)}/{count} acknowledged")
            time.sleep(0.01)


def warm_memory(mb: int = 1024) -> None:
    """Touch and free `mb` MB, so the next phase's allocations find pages the host has backed.

    Freed memory goes cold again in ~20 s on the development VM (4 GB touched: 2.4-2.9 s
    warm, 7-10 s cold), so each timed phase calls this right before it starts. A child
    process does the touching: this process's peak RSS stays the connector's.
    """
    subprocess.run([sys.executable, "-c", _TOUCH, str(mb)], check=True)


_TOUCH = """
import mmap, sys
mb = int(sys.argv[1])
chunk = b"\\1" * (1 << 20)
with mmap.mmap(-1, mb << 20) as region:
    for _ in range(mb):
        region.write(chunk)
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def peak_rss_mb(reset: bool = False) -> float:
    """VmHWM of this process; reset=True restarts the high-water mark (Linux clear_refs 5)."""
    value = float("nan")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            value = int(line.split()[1]) / 1024
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    return value


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: Path) -> float:
    """utime + stime of a process or thread (0 once it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rdkafka_threads() -> list[Path]:
    tasks = Path("/proc/self/task")
    return [t / "stat" for t in tasks.iterdir() if (t / "comm").read_text().startswith("rdk:")]


class CpuMeter:
    """CPU seconds of named parts (each a list of /proc stat files) over one phase."""

    def __init__(self, parts: dict[str, list[Path]]) -> None:
        self.parts = parts
        self.start = self.sample()

    def sample(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in paths) for name, paths in self.parts.items()}

    def per_row_us(self, rows: int) -> str:
        end = self.sample()
        return ", ".join(f"{name} {(end[name] - self.start[name]) / rows * 1e6:.1f}"
                         for name in self.parts)


def insert_rows(conn, start: int, count: int) -> None:
    """Rows generated by the server: the load generator takes no CPU (or GIL) from the connector."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO dossiers (code, procedure_code, procedure_name, agency_name, applicant_name, "
            "applicant_phone, status, received_at, due_at, fee_amount) "
            "SELECT 'BENCH-' || lpad(g::text, 7, '0'), '1.001234', 'Cấp giấy phép xây dựng', "
            "'UBND huyện Bến Lức', 'Nguyễn Văn An', '0909' || lpad((g %% 1000000)::text, 6, '0'), "
            "1 + g %% 10, '2024-06-12 08:30:00+07', '2024-06-20 17:00:00+07', 150000.50 + g %% 1000 "
            "FROM generate_series(%s, %s) g", (start, start + count - 1))
    conn.commit()


def settle_slot(conn, timeout: float = 60.0) -> None:
    """Wait until the slot's restart_lsn has caught up with the live phase's end.

    PostgreSQL moves restart_lsn only to a running-transactions record the client has
    confirmed past. The background writer logs one every 15 s while WAL is written, so a
    connector restarted in production re-reads at most seconds of WAL. This run stops the
    connector moments after the live phase; without this the capacity phase would first
    re-decode all of that phase's WAL, sending nothing. CHECKPOINT logs the record now.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        end = cur.fetchone()[0]
    conn.commit()
    conn.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                cur.execute("SELECT restart_lsn >= %s::pg_lsn FROM pg_replication_slots "
                            "WHERE slot_name = %s", (end, SLOT))
                if cur.fetchone()[0]:
                    return
                cur.execute("CHECKPOINT")
            time.sleep(1.0)  # the connector confirms the server's position about once a second
        print(f"note: the slot's restart_lsn did not reach {end} in {timeout:.0f} s")
    finally:
        conn.autocommit = False


def throughput(conn, acks: Acks, rows: int, per_tx: int, offset: int = 0) -> dict[str, float]:
    acks.reset()
    warm_memory()
    first_commit = 0.0
    for start in range(offset, offset + rows, per_tx):
        insert_rows(conn, start, per_tx)
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


def ceiling(config: dict, records: list[tuple[bytes | None, bytes | None]],
            broker_pid: int) -> tuple[float, str]:
    """Records/s, and the CPU per record (µs) of the producing thread, librdkafka, the broker."""
    before = set(rdkafka_threads())
    producer = Producer(config)
    producer.produce("bench.ceiling.warmup", b"x")
    producer.flush(10)
    warm_memory()
    meter = CpuMeter({"producing thread": [Path(f"/proc/self/task/{threading.get_native_id()}/stat")],
                      "librdkafka": [t for t in rdkafka_threads() if t not in before],
                      "broker": [Path(f"/proc/{broker_pid}/stat")]})
    start = time.time()
    for key, value in records:
        while True:
            try:
                producer.produce("bench.ceiling", key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return len(records) / (time.time() - start), meter.per_row_us(len(records))


def bound(conn, dsn: str, config: dict, records: list[tuple[bytes | None, bytes | None]],
          broker_pid: int) -> tuple[float, str]:
    """The ideal connector over BOUND_SLOT (then dropped): rows/s and CPU per row."""
    before = set(rdkafka_threads())
    producer = Producer(config)
    producer.produce("bench.bound.warmup", b"x")
    producer.flush(10)
    fresh = [t for t in rdkafka_threads() if t not in before]
    warm_memory()

    def meter(thread: Path, walsender_pid: int) -> CpuMeter:
        return CpuMeter({"connector thread": [thread], "librdkafka": fresh,
                         "walsender": [Path(f"/proc/{walsender_pid}/stat")],
                         "broker": [Path(f"/proc/{broker_pid}/stat")]})

    result = ideal_connector.stream(dsn, BOUND_SLOT, SLOT, producer, records, meter)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + 30
        while True:  # the walsender may outlive the closed connection by a moment
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_drop_replication_slot(%s)", (BOUND_SLOT,))
                break
            except psycopg2.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        conn.autocommit = False
    return result


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


class Running:
    """The connector in a thread of this process, with the acknowledgement hook."""

    def __init__(self, settings, acks: Acks) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=PgCapture(settings, self.stop, ack_listener=acks).run,
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while metrics.capture_connected._value.get() != 1:  # noqa: SLF001 - bench only
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("capture did not start streaming")
            time.sleep(0.005)
        self.streaming_since = time.time()

    def walsender_pid(self, conn) -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
            pid = cur.fetchone()[0]
        conn.commit()
        return pid

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


def capacity(conn, settings, acks: Acks, running: Running, n: int, offset: int,
             broker_pid: int) -> tuple[Running, float, str]:
    """Stop the connector, commit `n` changes, start it: rows/s from streaming start to last ack."""
    settle_slot(conn)
    running.close()
    acks.reset()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (BOUND_SLOT,))
    conn.commit()
    for start in range(offset, offset + n, 1000):
        insert_rows(conn, start, 1000)
    with conn.cursor() as cur:  # decoding restarts at restart_lsn, not at the confirmed position
        cur.execute("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn), "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) "
                    "FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
        reread, backlog = cur.fetchone()
    conn.commit()
    warm_memory()
    running = Running(settings, acks)
    meter = CpuMeter({"connector thread": [Path(f"/proc/self/task/{running.thread.native_id}/stat")],
                      "librdkafka": rdkafka_threads(),
                      "walsender": [Path(f"/proc/{running.walsender_pid(conn)}/stat")],
                      "broker": [Path(f"/proc/{broker_pid}/stat")]})
    acks.wait(n, timeout=600)
    rate = n / (acks.last - running.streaming_since)
    cpu = (f"{meter.per_row_us(n)}; the walsender decoded {reread / 2**20:.0f} MB of WAL already "
           f"confirmed (from the slot's restart_lsn) before the {backlog / 2**20:.0f} MB of new changes")
    return running, rate, cpu


def incremental(conn, settings, acks: Acks) -> tuple[int, float]:
    """Phase 5: (rows, seconds) of an incremental snapshot of the whole table."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE onestop_signal (id varchar(42) PRIMARY KEY, "
                    "type varchar(32) NOT NULL, data varchar(2048))")
        cur.execute(f"ALTER PUBLICATION {SLOT} ADD TABLE onestop_signal")
        cur.execute("SELECT count(*) FROM dossiers")
        rows = cur.fetchone()[0]
    signalled = settings.model_copy(update={"source": settings.source.model_copy(
        update={"signal_table": "public.onestop_signal"})})
    running = Running(signalled, acks)
    try:
        read_before = metrics.capture_snapshot_rows._value.get()  # noqa: SLF001 - bench only
        start = time.monotonic()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO onestop_signal VALUES ('bench', 'execute-snapshot', "
                        "'{\"data-collections\": [\"public.dossiers\"]}')")
        deadline = start + 600
        while metrics.capture_snapshot_rows._value.get() - read_before < rows \
                or metrics.capture_incremental_tables._value.get():  # noqa: SLF001
            if time.monotonic() > deadline:
                raise TimeoutError("the incremental snapshot did not finish in 10 minutes")
            time.sleep(0.01)
        return rows, time.monotonic() - start
    finally:
        running.close()


def summary(label: str, rates: list[float], raws: list[float]) -> str:
    ratios = [rate / raw for rate, raw in zip(rates, raws)]
    median, best = statistics.median(ratios), max(rates) / max(raws)
    return (f"{label}: median of {len(ratios)} rounds {median:.0%} "
            f"{'OK' if median >= 0.5 else 'BELOW TARGET'}; "
            f"best / best ceiling {best:.0%} {'OK' if best >= 0.5 else 'BELOW TARGET'}; "
            f"rounds {', '.join(f'{r:.0%}' for r in ratios)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=5,
                        help="capacity/ceiling pairs, measured back to back")
    parser.add_argument("--no-incremental", dest="incremental", action="store_false")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pg, broker = EmbeddedPostgres().start(), EmbeddedBroker().start()
    running: Running | None = None
    n = args.rows
    try:
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute((ROOT / "schemas" / "reference.sql").read_text())
        conn.autocommit = False
        settings = load_settings(None, source={"dsn": pg.dsn, "topic_prefix": SLOT, "slot": SLOT,
                                               "publication": SLOT, "heartbeat_interval_s": 0},
                                 kafka={"bootstrap_servers": broker.bootstrap})
        acks = Acks()
        running = Running(settings, acks)
        rss_start = peak_rss_mb(reset=True)

        live = throughput(conn, acks, n, 1000)
        rss_live = peak_rss_mb(reset=True)
        print(f"live: {n:,} changes written as fast as PostgreSQL takes them (transactions of 1,000 "
              f"rows): {live['rate']:,.0f} rows/s commit->ack in {live['seconds']:.2f}s; "
              f"commit->ack p50 {live['p50']:.0f} ms, p99 {live['p99']:.0f} ms")

        big = throughput(conn, acks, n, n, offset=n)
        rss_big = peak_rss_mb()
        print(f"one {n:,}-row transaction: {big['rate']:,.0f} rows/s commit->ack")
        print(f"peak RSS of this process (connector + idle load generator): {rss_start:.0f} MB after "
              f"start-up, {rss_live:.0f} MB in the 1,000-row transactions, "
              f"{rss_big:.0f} MB in the {n:,}-row transaction")

        rates: list[float] = []
        bounds: list[float] = []
        raws: list[float] = []
        records: list[tuple[bytes | None, bytes | None]] = []
        config = producer_config(settings.kafka, "bench-ceiling")
        assert broker.proc is not None, "started above"
        broker_pid = broker.proc.pid
        for round_ in range(1, args.rounds + 1):
            running, rate, cpu = capacity(conn, settings, acks, running, n, offset=(round_ + 1) * n,
                                          broker_pid=broker_pid)
            records = records or read_back(broker.bootstrap, f"{SLOT}.public.dossiers", n)
            ideal, ideal_cpu = bound(conn, pg.dsn, config, records, broker_pid)
            raw, raw_cpu = ceiling(config, records, broker_pid)
            rates.append(rate)
            bounds.append(ideal)
            raws.append(raw)
            print(f"round {round_}: capacity {rate:,.0f} rows/s (the same volume waiting in the slot, "
                  f"streaming start -> last ack); bound {ideal:,.0f} rows/s (an ideal connector, "
                  f"same changes); ceiling {raw:,.0f} records/s (raw produce of {n:,} of the same "
                  f"records, right after); ratio {rate / raw:.0%}, bound/ceiling {ideal / raw:.0%}")
            print(f"  CPU per row (us): {cpu}; bound: {ideal_cpu}; raw produce: {raw_cpu}")
        del records
        print(summary("capacity/ceiling (target >= 50%)", rates, raws))
        print(summary("bound/ceiling (an ideal connector, for reference)", bounds, raws))

        slow = paced(pg.connect(), acks, 200, args.paced_seconds)
        print(f"paced: {slow['count']} changes at 200/s: commit->ack p50 {slow['p50']:.1f} ms, "
              f"p99 {slow['p99']:.1f} ms, max {slow['max']:.1f} ms (target p99 < 500 ms) "
              f"{'OK' if slow['p99'] < 500 else 'ABOVE TARGET'}")
        if args.incremental:
            running.close()
            running = None
            rows, seconds = incremental(conn, settings, acks)
            print(f"incremental snapshot: {rows:,} rows read again on a signal in {seconds:.1f}s, "
                  f"{rows / seconds:,.0f} rows/s (chunks of {settings.source.incremental_chunk_size:,}, "
                  f"signal commit -> last chunk acknowledged)")
        return 0
    finally:
        if running is not None:
            running.close()
        pg.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
