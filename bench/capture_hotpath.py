"""The capture connector's per-row cost in its own thread, without a broker or a walsender.

bench/capture.py measures the whole pipeline on two shared vCPUs, where a round's connector
thread moves by a microsecond per row with the host; steps of 0.1–0.3 µs are lost in that.
This script times the hot path itself on one real dossier insert (captured from a
throwaway PostgreSQL through pgoutput), per row, best of several rounds:

- handle: `Streamer.handle` — finding the table, encoding, the record key, producing,
  the transaction's accounting (`Delivery.send_row`);
- encode + produce: the encoder's `produce`, called directly;
- encode: the encoder's `encode`, which gives the event and the key;
- produce: `Producer.produce` of the finished record alone.

handle − (encode + produce) is the glue between them. Records go to a producer whose
broker does not exist, so nothing is sent; each round's queue is purged.

Run: .venv/bin/python bench/capture_hotpath.py [--rows 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.embedded import EmbeddedPostgres, free_port  # noqa: E402
from bridge.settings import load_settings  # noqa: E402
from connectors.delivery import ANY_PARTITION, Delivery, producer_config  # noqa: E402
from connectors.stream import StreamOptions, Streamer  # noqa: E402

from capture import insert_rows  # noqa: E402


def streamer_and_insert() -> tuple[Streamer, bytes]:
    """A Streamer that has read one bench row's Begin and Relation — the table described by
    the catalog, as in production — and that row's Insert, as pgoutput sends them."""
    pg = EmbeddedPostgres().start()
    try:
        conn = pg.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute((ROOT / "schemas" / "reference.sql").read_text())
            cur.execute("CREATE PUBLICATION hot FOR TABLE dossiers")
            cur.execute("SELECT pg_create_logical_replication_slot('hot', 'pgoutput')")
        conn.autocommit = False
        insert_rows(conn, 1, 1)
        with conn.cursor() as cur:
            cur.execute("SELECT data FROM pg_logical_slot_peek_binary_changes('hot', NULL, NULL, "
                        "'proto_version', '1', 'publication_names', 'hot')")
            messages = {bytes(row[0])[:1]: bytes(row[0]) for row in cur.fetchall()}
        settings = load_settings(None, source={"dsn": pg.dsn},
                                 kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
        delivery = Delivery(producer_config(settings.kafka) | {"queue.buffering.max.messages": 1_000_000,
                                                               "queue.buffering.max.kbytes": 2_000_000})
        # The reader is never used: only handle() runs.
        cursor: object = types.SimpleNamespace(connection=types.SimpleNamespace(pgconn_ptr=0))
        opts = StreamOptions("bench", "bench", "bench", "bench", False, 0, None)
        stream = Streamer(opts, cursor, conn, delivery, threading.Event(), None)  # type: ignore[arg-type]
        stream.handle(messages[b"B"], 1)
        stream.handle(messages[b"R"], 1)
        conn.close()
        return stream, messages[b"I"]
    finally:
        pg.stop()


def per_row_ns(loop: Callable[[int], None], rows: int, rounds: int, after: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        loop(rows)
        best = min(best, (time.perf_counter() - start) / rows * 1e9)
        after()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the missing broker's connection errors
    stream, insert = streamer_and_insert()
    rel = next(iter(stream.rels.values()))
    encoder, frame = rel.encode, stream._transaction(rel).frame  # noqa: SLF001 - bench only
    assert encoder is not None, "the native event path is built with the compiled hot path"
    assert stream.batch is not None, "the Begin above opened it"
    producer, callback, topic = stream.delivery.producer, stream.batch.callback, rel.schema.topic
    encoded = encoder.encode(insert, frame, 1)
    assert encoded is not None
    event, key = encoded
    lsn = 24023128

    def handle(n: int, handle: Callable[[bytes, int], None] = stream.handle) -> None:
        for _ in range(n):
            handle(insert, lsn)

    def encode_produce(n: int) -> None:
        for _ in range(n):
            encoder.produce(insert, frame, lsn, producer, topic, callback)

    def encode(n: int) -> None:
        for _ in range(n):
            encoder.encode(insert, frame, lsn)

    def produce(n: int) -> None:
        for _ in range(n):
            producer.produce(topic, event, key, ANY_PARTITION, callback)

    def purge() -> None:
        producer.purge()
        producer.poll(0)  # the purged records' reports

    results = {name: per_row_ns(loop, args.rows, args.rounds, purge)
               for name, loop in (("handle", handle), ("encode + produce", encode_produce),
                                  ("encode", encode), ("produce", produce))}
    print(f"one dossier insert ({len(insert)} bytes of pgoutput, {len(event)}-byte event), "
          f"ns per row, best of {args.rounds} rounds of {args.rows:,}:")
    for name, ns in results.items():
        print(f"  {name:<17} {ns:7.0f}")
    glue = results["handle"] - results["encode + produce"]
    print(f"  {'glue':<17} {glue:7.0f}  (handle - encode - produce)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
