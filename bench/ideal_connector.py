"""The bound of bench/capture.py: what any connector could reach on this host.

It reads a slot's pgoutput stream with the connector's own native reader and produces, per
row change, a record that is already encoded — the i-th change gets the i-th of the
records the real connector wrote — with a delivery callback per record (the connector's
no-loss rule needs each one acknowledged). No decoding, no encoding, no batches, no
confirmation to the slot. Between it and the ceiling lies what reading the slot costs
(PostgreSQL's walsender above all); between the connector and it, the connector's own
per-row work.
"""

from __future__ import annotations

import select
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
from confluent_kafka import Producer

from connectors.delivery import ANY_PARTITION, Batch
from connectors.pgoutput import ROW_TAGS
from connectors.pgwire import DRAINED
from connectors.wire import StreamReader


def stream(dsn: str, slot: str, publication: str, producer: Producer,
           records: list[tuple[bytes | None, bytes | None]], meter_for: Any) -> tuple[float, str]:
    """Rows/s from the start of streaming to the last acknowledgement, and the CPU per row.

    `meter_for(thread_stat, walsender_pid)` starts the phase's CpuMeter.
    """
    conn = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cursor = conn.cursor()
        reader = StreamReader(cursor)
        batch = Batch(None, None)
        produce, callback, total = producer.produce, batch.callback, len(records)
        sent = 0

        def handle(payload: bytes, _lsn: int) -> None:
            nonlocal sent
            if payload[0] in ROW_TAGS and sent < total:
                key, value = records[sent]
                while True:
                    try:
                        produce("bench.bound", value, key, ANY_PARTITION, callback)
                        break
                    except BufferError:
                        producer.poll(0.01)
                sent += 1
                batch.pending += 1

        cursor.start_replication(slot_name=slot, decode=False,
                                 options={"proto_version": "1", "publication_names": publication})
        start = time.time()
        meter = meter_for(Path(f"/proc/self/task/{threading.get_native_id()}/stat"),
                          conn.get_backend_pid())
        deadline = time.monotonic() + 120
        while sent < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bound: only {sent}/{total} changes read from slot {slot}")
            drained = reader.burst(handle, 512) == DRAINED
            producer.poll(0)  # the acknowledgements so far, as the connector's housekeeping does
            if drained:
                select.select([cursor], [], [], 0.01)
        producer.flush(120)
        if batch.pending or batch.error is not None:
            raise RuntimeError(f"bound: {batch.pending} records unacknowledged, error {batch.error}")
        return total / (time.time() - start), meter.per_row_us(total)
    finally:
        conn.close()
