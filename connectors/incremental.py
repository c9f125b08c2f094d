"""Incremental snapshots: a table read again, a chunk at a time, while streaming goes on.

Debezium's signal-driven `execute-snapshot` of type `incremental`, after Netflix's DBLog. An
operator inserts a row into the signal table (`source.signal_table`, Debezium's layout: id,
type, data); the insert reaches the connector through the stream, in order with the changes.

Per chunk: the connector reads the next rows by primary key (`source.incremental_chunk_size`),
keeps them, and writes a watermark into the WAL (a transactional logical decoding message,
which needs no table and no write grant). Every change of the table the stream delivers
between that read and the watermark drops its key from the chunk: the stream carries a
state at least as new. At the watermark the rest of the chunk goes to Kafka as op "r"
(`source.snapshot` "incremental"). A change made after the watermark comes after its
chunk row, so each key's last record is its latest state; a row deleted before the read is
not in it. Debezium's low watermark is not needed: a change the read cannot see commits
after it, so the stream delivers it after the read too (save the race below), before or
after the watermark — dropped from the chunk, or published after it.

One race is closed beyond Debezium's: PostgreSQL makes a commit visible a moment after it
writes it to the WAL (longer where a commit waits for a synchronous standby), so the stream
can deliver a change that a read, a moment later, cannot see yet; that older row would then
be published after it. The read's snapshot says which transactions it saw (`Visibility`):
a read that misses one the stream has already delivered is thrown away and done again.

Progress (the last key of the last chunk Kafka acknowledged) travels in the offsets record
with the confirmation bound, so a restart resumes at the next chunk, not at the start.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Protocol

from bridge import metrics
from connectors.signals import Signal, parse_signal

log = logging.getLogger("onestop.capture.incremental")
WATERMARK_PREFIX: Final = "onestop-incremental-watermark"
_XID_MASK: Final = 0xFFFFFFFF
# How many delivered transactions a read is checked against: one not yet visible committed a
# moment ago, or waits for a synchronous standby; never thousands of commits back.
RECENT_TRANSACTIONS: Final = 10_000
RETRY_HIDDEN_S: Final = 0.05  # a refused read is tried again this much later
RETRY_DEFERRED_S: Final = 1.0  # a read that met a lock, this much later
WARN_HIDDEN_AFTER_S: Final = 30.0
PROGRESS_EVERY: Final = 100_000  # rows between two progress lines in the log
Key = list[str | None]  # a primary key as text, in key-column order


@dataclass
class Progress:
    """What the offsets record keeps: the tables still to read, and where the first stands."""

    started_by: str  # "signal <id>", or why the connector started it
    tables: list[str]
    after: Key | None = None  # the last key read; None: from the start
    until: Key | None = None  # the table's largest key when its reading began
    rows: int = 0
    done_signals: list[int] = field(default_factory=list)  # the WAL positions of signals acted on
    filters: dict[str, str] = field(default_factory=dict)  # table -> the condition its rows meet
    paused: bool = False  # by a pause-snapshot signal, until a resume-snapshot one

    @classmethod
    def restore(cls, saved: dict[str, Any] | None) -> Progress | None:
        if not saved or not saved.get("tables"):
            return None
        # A record written by another version may lack a field, or hold one no longer known.
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


@dataclass(frozen=True)
class Visibility:
    """The transactions still running when a read's snapshot was taken: invisible to it.
    (One the stream delivered before the read committed before it, so it is either visible
    or among these; none can be past the snapshot's xmax.)"""

    running: frozenset[int]  # 32-bit ids, as pgoutput's Begin carries them

    @classmethod
    def parse(cls, text: str) -> Visibility:
        """`pg_current_snapshot()` as text: "xmin:xmax:xip,…", 64-bit ids with their epoch."""
        running = text.split(":")[2]
        return cls(frozenset(int(x) & _XID_MASK for x in running.split(",") if x))


@dataclass
class Chunk:
    """Rows a `ChunkSource` read, in key order; once its watermark is written (`id`), they
    wait for it, and the stream's changes take keys out."""

    table: str
    topic: str
    rows: dict[bytes | None, bytes]  # record key -> record value
    last: Key | None  # the last key read; None: the table is finished
    until: Key | None  # the table's largest key when its reading began
    visibility: Visibility
    id: str = ""


class ChunkDeferred(Exception):
    """The read could not be made now (a lock held on the table): try the same chunk later."""


class ChunkSource(Protocol):
    """Reading a chunk and writing its watermark (connectors/chunks.py)."""

    def read(self, table: str, after: Key | None, until: Key | None, where: str | None) -> Chunk | None:
        """The rows after `after` up to `until` (None: the table's largest key now) that meet
        `where` (an SQL condition; None: all); None for a table that cannot be read in chunks
        (the source logs why). ChunkDeferred: not now, the same read later."""

    def watermark(self, chunk_id: str) -> None: ...


class IncrementalSnapshot:
    """The state machine, free of I/O: what to read next, what the stream overtook, what
    Kafka has."""

    def __init__(self, configured: frozenset[str], saved: dict[str, Any] | None,
                 keep: Callable[[dict[str, Any] | None], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = configured
        self.clock = clock
        self.keep = keep  # where progress goes (the offsets record); None when nothing is left
        # What a restart resumes from: the tables to read, and how far Kafka has the first.
        self.acked = Progress.restore(saved)
        self.read = _copy(self.acked)  # what has been read: ahead of `acked` by a chunk in flight
        self.chunk: Chunk | None = None  # read, waiting for its watermark
        # The transactions the stream delivered last, oldest first (a dict: ordered, and a set).
        self._committed: dict[int, None] = {}
        self.emitted: Any = None  # the batch of the last chunk published, until Kafka has it
        self._retry_at = 0.0  # after a read put off (`_later`), not before this
        self._waiting_since: float | None = None
        self._done = [d for d in self.acked.done_signals if isinstance(d, int)] if self.acked else []
        metrics.capture_incremental_tables.set(len(self.acked.tables) if self.acked else 0)
        if self.acked:
            (log.warning if self.acked.paused else log.info)(
                "resuming the incremental snapshot of %s after key %s%s",
                _described(self.acked.tables, self.acked.filters), self.acked.after,
                "; it is paused until a resume-snapshot signal" if self.acked.paused else "")

    # --- signals --------------------------------------------------------------------------

    def signal(self, row: dict[str, Any], lsn: int) -> None:
        """A row inserted into the signal table, at `lsn` in the WAL."""
        try:
            parsed = parse_signal(row)
        # The row stays in the WAL: raising here would stop capture at every start.
        except Exception as exc:  # noqa: BLE001
            parsed = f"unreadable ({exc!r})"
        if isinstance(parsed, str):
            log.warning("signal %s ignored: %s", row.get("id"), parsed)
            return
        if lsn in self._done:
            return  # the same insert read again after a restart (an id may be used again)
        self._done = (self._done + [lsn])[-20:]
        if parsed.action == "log":
            log.info("signal %s: %s", parsed.id, parsed.message)
            return
        if parsed.action == "stop-snapshot":
            self._stop(parsed)
            return
        if parsed.action in ("pause-snapshot", "resume-snapshot"):
            self._pause(parsed, parsed.action == "pause-snapshot")
            return
        unknown = [t for t in parsed.tables if t not in self.configured]
        if unknown:
            log.warning("signal %s: %s not in source.tables, not snapshotted", parsed.id,
                        ", ".join(unknown))
        self.enqueue([t for t in parsed.tables if t in self.configured], f"signal {parsed.id}",
                     parsed.filters)

    def enqueue(self, tables: list[str], why: str, filters: dict[str, str] | None = None) -> None:
        """Read `tables` after those already queued; of a table in `filters`, only the rows
        that meet its condition."""
        filters = filters or {}
        if self.read is None:
            self.read = Progress(why, [])
        clash = [t for t in tables if t in self.read.tables and self.read.filters.get(t) != filters.get(t)]
        if clash:  # one read per table at a time; which one the operator wants is theirs to say
            log.warning("%s: %s already being read with another filter; not read again (a "
                        "stop-snapshot signal ends that read)", why, ", ".join(clash))
        added = [t for t in tables if t not in self.read.tables]
        for progress in (self.read, self.acked):
            if progress is not None:
                new = [t for t in tables if t not in progress.tables]
                progress.tables += new
                progress.filters.update({t: filters[t] for t in new if t in filters})
        if not self.read.tables:
            self.read = None
            return
        if added:
            log.info("%s: incremental snapshot of %s", why, _described(added, self.read.filters))
        self._settle()

    def _pause(self, signal: Signal, paused: bool) -> None:
        """Debezium's pause-snapshot / resume-snapshot: no chunk is read while paused (the
        one read already is published at its watermark); the pause outlives a restart."""
        if self.read is None or self.read.paused == paused:
            log.warning("signal %s: no incremental snapshot is %s; nothing to do", signal.id,
                        "running" if paused else "paused")
            return
        for progress in (self.read, self.acked):
            if progress is not None:
                progress.paused = paused
        log.warning("signal %s: incremental snapshot of %s %s", signal.id, ", ".join(self.read.tables),
                    "paused; a resume-snapshot signal continues it" if paused else "resumed")
        self._settle()

    def _stop(self, signal: Signal) -> None:
        reading = self.read.tables if self.read else []
        stopped = [t for t in reading if not signal.tables or t in signal.tables]
        if stopped:
            log.warning("signal %s: incremental snapshot of %s stopped; Kafka keeps only the rows read "
                        "so far (an execute-snapshot signal reads the table again)", signal.id,
                        ", ".join(stopped))
        self.read, self.acked = _without(self.read, signal.tables), _without(self.acked, signal.tables)
        if self.chunk is not None and self.table != self.chunk.table:
            self.chunk = None  # its watermark is ignored
        self._settle()

    # --- chunks ---------------------------------------------------------------------------

    @property
    def table(self) -> str | None:
        """The table being read, whose changes the stream must show to `seen`."""
        if self.read is None or (self.read.paused and self.chunk is None):
            return None
        return self.read.tables[0]

    def wants_chunk(self) -> bool:
        return self.read is not None and not self.read.paused and self.chunk is None \
            and self.emitted is None and self.clock() >= self._retry_at

    def take_chunk(self, source: ChunkSource) -> None:
        """Read the next chunk (or start the next table), then write its watermark."""
        read = self.read
        assert read is not None, "wants_chunk() first"
        table = read.tables[0]
        try:
            got = source.read(table, read.after, read.until, read.filters.get(table)) \
                if table in self.configured else None
        except ChunkDeferred as why:
            self._later(RETRY_DEFERRED_S, f"incremental snapshot of {table} waits: {why}")
            return
        if got is not None and got.last is not None and got.last == read.after:
            log.error("incremental snapshot of %s: the chunk after key %s ended at that key again; "
                      "skipped (a filter that lifts the key bound?)", table, read.after)
            got = None
        if got is None:  # gone, no longer keyed, or no longer in source.tables: skipped
            if table not in self.configured:
                log.warning("incremental snapshot: %s is no longer in source.tables; skipped", table)
            self._table_done()
            self._settle()
            return
        hidden = [xid for xid in got.visibility.running if xid in self._committed]
        if hidden:  # committed in the WAL, not yet visible: read again shortly
            self._later(RETRY_HIDDEN_S, f"incremental snapshot of {table} waits for transactions "
                        f"{hidden}, committed but not yet visible (a commit waiting for a synchronous standby?)")
            return
        self._waiting_since = None
        read.until, got.id = got.until, uuid.uuid4().hex
        self.chunk = got
        source.watermark(got.id)

    def _later(self, delay: float, why: str) -> None:
        """The same chunk again in `delay` seconds; said once a wait passes WARN_HIDDEN_AFTER_S."""
        now = self.clock()
        self._retry_at = now + delay
        if self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since > WARN_HIDDEN_AFTER_S:
            log.warning(why)
            self._waiting_since = now

    def seen(self, key: bytes | None) -> None:
        """A change of the table being read, streamed before the chunk's watermark: the
        stream carries a state at least as new as the row read."""
        if self.chunk is not None:
            self.chunk.rows.pop(key, None)

    def committed(self, xid: int) -> None:
        """The stream delivered transaction `xid` (every transaction, signal or not: the
        first read after a signal must see those delivered before it too)."""
        committed = self._committed
        committed[xid] = None
        if len(committed) > RECENT_TRANSACTIONS:
            del committed[next(iter(committed))]

    def watermark(self, chunk_id: str) -> Chunk | None:
        """The chunk to publish now, or None for a watermark of an earlier session."""
        chunk = self.chunk
        if chunk is None or chunk.id != chunk_id or self.read is None:
            return None
        self.chunk = None
        if chunk.last is not None and \
                (self.read.rows + len(chunk.rows)) // PROGRESS_EVERY > self.read.rows // PROGRESS_EVERY:
            log.info("incremental snapshot of %s: %d rows so far, up to key %s", chunk.table,
                     self.read.rows + len(chunk.rows), chunk.last)
        self.read.rows += len(chunk.rows)
        metrics.capture_snapshot_rows.inc(len(chunk.rows))
        if chunk.last is None:
            log.info("incremental snapshot of %s complete: %d rows", chunk.table, self.read.rows)
            self._table_done()
        else:
            self.read.after = chunk.last
        return chunk

    def _table_done(self) -> None:
        read = self.read
        assert read is not None
        read.filters.pop(read.tables[0], None)
        read.tables, read.after, read.until, read.rows = read.tables[1:], None, None, 0
        if not read.tables:
            self.read = None

    def published(self, batch: Any) -> None:
        """The chunk went into `batch`: its progress counts once Kafka has the batch."""
        self.emitted = batch

    def acknowledged(self, position: int) -> None:
        """Kafka's acknowledged position moved to `position`: keep the progress it covers."""
        batch = self.emitted
        if batch is not None and batch.end_lsn and position >= batch.end_lsn:
            self.emitted = None
            self._settle()

    def _settle(self) -> None:
        """Progress to keep: all that was read when nothing is in flight (no chunk read or
        published but not yet in Kafka); else `acked`, with the signals since applied. Kept
        at once, or a restart after the slot passed a signal would never act on it."""
        if self.chunk is None and self.emitted is None:
            self.acked = _copy(self.read)
        if self.acked is not None:
            self.acked.done_signals = list(self._done)
        self.keep(asdict(self.acked) if self.acked is not None else None)
        metrics.capture_incremental_tables.set(len(self.acked.tables) if self.acked else 0)

    def restart(self) -> None:
        """A new session replays from the slot's confirmed position: read again from what
        Kafka has; a chunk still waiting for its watermark is read again too."""
        self.read = _copy(self.acked)
        self.chunk, self.emitted = None, None


def _described(tables: list[str], filters: dict[str, str]) -> str:
    return ", ".join(f"{t} (rows where {filters[t]})" if t in filters else t for t in tables)


def _copy(progress: Progress | None) -> Progress | None:
    return None if progress is None else Progress(**asdict(progress))


def _without(progress: Progress | None, tables: tuple[str, ...]) -> Progress | None:
    """`progress` less `tables` (all, when none are named); the first one's position with it."""
    if progress is None:
        return None
    kept = [t for t in progress.tables if tables and t not in tables]
    if not kept:
        return None
    if kept[0] != progress.tables[0]:
        progress.after, progress.until, progress.rows = None, None, 0
    progress.tables = kept
    progress.filters = {t: f for t, f in progress.filters.items() if t in kept}
    return progress
