"""Republish dead-lettered records to their source topic, with an audit trail.

The original key and value go back to the original topic with one added header,
``onestop.replayed-from=<dlq partition>:<dlq offset>``. The bridge then treats them
like any redelivery — through the ledger — except that notifications marked dead get
one more chance: whatever was already sent stays sent, so a replay (even a double
one) never sends a citizen the same notice twice.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from confluent_kafka import Producer

from bridge import metrics
from bridge.dlq import headers as h
from bridge.dlq.reader import DlqRecord


@dataclass
class ReplayResult:
    replayed: int = 0
    failed: int = 0


def operator_name() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def audit_line(record: DlqRecord, target: str, *, dry_run: bool, operator: str,
               result: str, target_offset: int | None = None) -> dict[str, Any]:
    return {
        "action": "dlq.replay", "result": result, "dry_run": dry_run,
        "dlq_topic": record.topic, "dlq_partition": record.partition,
        "dlq_offset": record.offset, "target_topic": target, "target_offset": target_offset,
        "dossier_code": record.dossier_code, "kind": record.get(h.KIND),
        "error_class": record.get(h.ERROR_CLASS), "reason": record.get(h.ERROR_REASON),
        "operator": operator, "at": h.iso_now(),
    }


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.done = 0

    def step(self) -> None:
        self.done += 1
        filled = self.width * self.done // max(1, self.total)
        self.stream.write(f"\rreplaying [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{self.done}/{self.total}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def replay(records: list[DlqRecord], producer: Producer | None, default_target: str, *,
           dry_run: bool, audit: Callable[[dict[str, Any]], None],
           progress: Progress | None = None, timeout_s: float = 30.0) -> ReplayResult:
    """Produce each record back (unless dry-run) and audit it once its fate is known."""
    result = ReplayResult()
    operator = operator_name()
    for record in records:
        target = record.get(h.ORIGINAL_TOPIC) or default_target
        if dry_run or producer is None:
            audit(audit_line(record, target, dry_run=True, operator=operator, result="dry_run"))
            metrics.replayed.labels(result="dry_run").inc()
        else:
            outcome = _produce(producer, record, target, timeout_s)
            offset = outcome if isinstance(outcome, int) else None
            result.replayed += offset is not None
            result.failed += offset is None
            audit(audit_line(record, target, dry_run=False, operator=operator,
                             result="replayed" if offset is not None else f"failed: {outcome}",
                             target_offset=offset))
            metrics.replayed.labels(result="replayed" if offset is not None else "failed").inc()
        if progress is not None:
            progress.step()
    return result


def _produce(producer: Producer, record: DlqRecord, target: str, timeout_s: float) -> int | str:
    """The target offset, or why it failed. One record at a time: the audit is exact."""
    report: dict[str, Any] = {}

    def done(err: Any, msg: Any) -> None:
        report["err"], report["offset"] = err, (msg.offset() if msg is not None else None)

    headers: list[tuple[str, str | bytes | None]] = [
        *h.foreign(record.raw_headers), (h.REPLAYED_FROM, record.position.encode("utf-8"))]
    producer.produce(target, key=record.key, value=record.value, headers=headers,
                     on_delivery=done)
    deadline = time.monotonic() + timeout_s
    while "err" not in report and time.monotonic() < deadline:
        producer.poll(0.1)
    if "err" not in report:
        return "no acknowledgement from the broker"
    if report["err"] is not None:
        return str(report["err"])
    return int(report["offset"])


def json_line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False)
