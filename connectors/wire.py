"""Reading the replication stream: pgoutput messages off the slot, a burst at a time.

Where `connectors/_pgwire.c` is built (setup.py) it reads psycopg2's connection with libpq
directly, sparing a ReplicationMessage per change (~0.4 µs of the connector thread's
~3.5 µs per row); otherwise `ReplicationCursor.read_message()` does. Both stop where
read_message() returns None, report the server's WAL position, and raise what psycopg2
raises when the stream ends or the connection fails.

`caught_up` says the server has sent all there is: a walsender that has decoded all the
WAL sends a keepalive before it waits for more, and the native reader sees it. Through
read_message() keepalives are invisible, so there any drained stream counts as caught
up — that reader is slower than the walsender, and drains at the end of a burst.

The native reader leaves out one thing read_message() does on its own: answering a
keepalive with a flush position moved up to the server's WAL end. The connector confirms
only what Kafka holds (`offsets.ConfirmLimit`), so it answers those itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import psycopg2
import psycopg2.errors
from psycopg2.extras import ReplicationCursor

log = logging.getLogger("onestop.capture.wire")

try:
    import psycopg2._psycopg as _psycopg

    from connectors._pgwire import bind as _bind
    from connectors._pgwire import read as _read

    _bind(_psycopg.__file__)
except ImportError as exc:  # a pure-Python install, or a psycopg2 whose libpq is out of reach
    log.debug("reading the replication stream with psycopg2 (%s)", exc)
    _read = None

MORE: Final = 0  # the burst's limit was reached
DRAINED: Final = 1  # nothing more for now: wait on the socket
REPLY: Final = 2  # the server asked for a status update
_ENDED: Final = 3
_BROKEN: Final = 4
_KEEPALIVE: Final = 2  # the kind of the last message read (0: none, 1: data)

Handler = Callable[[bytes, int], None]


class StreamReader:
    """`burst(handle, limit)` hands up to `limit` changes to `handle(payload, lsn)` and says
    why it stopped; `wal_end` is the last WAL position the server reported."""

    def __init__(self, cursor: ReplicationCursor) -> None:
        self.cursor = cursor
        self.wal_end = 0
        self.caught_up = False
        self._pgconn = cursor.connection.pgconn_ptr if _read is not None else None

    def burst(self, handle: Handler, limit: int) -> int:
        if self._pgconn is None:
            return self._read_messages(handle, limit)
        status, wal_end, last, detail = _read(self._pgconn, handle, limit)
        if last:
            self.wal_end, self.caught_up = max(self.wal_end, wal_end), last == _KEEPALIVE
        if status == _ENDED:
            raise _server_error(detail) if detail else psycopg2.OperationalError(
                "the server ended the replication stream")
        if status == _BROKEN:
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
