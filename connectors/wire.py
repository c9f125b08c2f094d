"""Reading the replication stream: pgoutput messages off the slot, a burst at a time.

libpq's PQgetCopyData is called on psycopg2's own connection: by `connectors/_pgwire.c`
where it is built (setup.py), by `connectors/pgwire.py` through ctypes in a pure-Python
install. Both see the server's keepalives; the C one also spares a ReplicationMessage per
change (~0.4 µs of the connector thread's ~3.5 µs per row). Only where neither can reach
psycopg2's libpq does `ReplicationCursor.read_message()` read, with two flaws `pgwire.py`
names. All stop where read_message() would return None, report the server's WAL position,
and raise what psycopg2 raises when the stream ends or the connection fails.

`caught_up` says the server has sent all there is: a walsender that has decoded all the
WAL sends a keepalive before it waits for more, and the libpq readers see it. Through
read_message() keepalives are invisible, so there any drained stream counts as caught up.

The libpq readers leave out one thing read_message() does on its own: answering a
keepalive with a flush position moved up to the server's WAL end. The connector confirms
only what Kafka holds (`offsets.ConfirmLimit`), so it answers those itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2._psycopg as _psycopg
import psycopg2.errors
from psycopg2.extras import ReplicationCursor

from connectors import pgwire
from connectors.pgwire import BROKEN, DRAINED, ENDED, KEEPALIVE, MORE, REPLY

log = logging.getLogger("onestop.capture.wire")

__all__ = ["DRAINED", "MORE", "REPLY", "Handler", "StreamReader"]
Handler = Callable[[bytes, int], None]


def _libpq_reader() -> tuple[Callable[[int, Handler, int], pgwire.Result] | None, str]:
    """The fastest reader that binds to psycopg2's libpq, or None and why not."""
    path = _psycopg.__file__
    try:
        from connectors._pgwire import bind, read

        bind(path)
        return read, ""
    except ImportError as exc:  # a pure-Python install, or psycopg2's libpq out of reach
        log.debug("no native replication reader (%s)", exc)
    try:
        return pgwire.Reader(path), ""
    except (OSError, AttributeError) as exc:  # a psycopg2 without a loadable libpq
        return None, str(exc)


_read, _unreachable = _libpq_reader()


class StreamReader:
    """`burst(handle, limit)` hands up to `limit` changes to `handle(payload, lsn)` and says
    why it stopped; `wal_end` is the last WAL position the server reported."""

    def __init__(self, cursor: ReplicationCursor) -> None:
        self.cursor = cursor
        self.wal_end = 0
        self.caught_up = False
        self._read = _read
        self._pgconn = cursor.connection.pgconn_ptr
        if _read is None:
            log.warning("reading the replication stream with psycopg2's read_message() (%s): it "
                        "confirms keepalive positions on its own, past the bound Kafka holds, so "
                        "a crash can lead to a new snapshot at the next start", _unreachable)

    def burst(self, handle: Handler, limit: int) -> int:
        read = self._read
        if read is None:
            return self._read_messages(handle, limit)
        status, wal_end, last, detail = read(self._pgconn, handle, limit)
        if last:
            self.wal_end, self.caught_up = max(self.wal_end, wal_end), last == KEEPALIVE
        if status == ENDED:
            raise _server_error(detail) if detail else psycopg2.OperationalError(
                "the server ended the replication stream")
        if status == BROKEN:
            raise psycopg2.OperationalError(detail)
        return status

    def _read_messages(self, handle: Handler, limit: int) -> int:
        read, drained = self.cursor.read_message, False
        for _ in range(limit):
            msg = read()
            if msg is None:
                drained = True
                break
            handle(msg.payload, msg.data_start)
        self.wal_end, self.caught_up = self.cursor.wal_end or self.wal_end, drained
        return DRAINED if drained else MORE


_ERROR_TYPES: dict[str, type[psycopg2.Error]] = {}


def _server_error(detail: tuple[str | None, str]) -> psycopg2.Error:
    """The server's ErrorResponse as psycopg2 raises it: its SQLSTATE's class, with `pgcode`
    and `pgerror` (read-only on psycopg2's own instances, hence a subclass per SQLSTATE)."""
    sqlstate, message = detail
    if sqlstate is None:
        return psycopg2.OperationalError(message)
    kind = _ERROR_TYPES.get(sqlstate)
    if kind is None:
        try:
            base: Any = psycopg2.errors.lookup(sqlstate)
        except KeyError:
            base = psycopg2.DatabaseError
        kind = _ERROR_TYPES[sqlstate] = type(base.__name__, (base,), {
            "pgcode": sqlstate, "pgerror": property(lambda error: str(error))})
    return kind(message)
