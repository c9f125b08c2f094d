"""The replication stream read through libpq with ctypes: `_pgwire.c`'s reader for a
pure-Python install (no compiler), with the same contract — see `connectors/_pgwire.c`.

Why not psycopg2's `read_message()` there: on a keepalive it moves its own flush position
up to the server's WAL end once everything read was confirmed, and sends that with its next
status update. That passes the bound Kafka holds (`offsets.ConfirmLimit`): after a crash the
slot is found ahead of it, taken for a slot someone else moved, and every table is
snapshotted again. It also keeps keepalives to itself, so the stream cannot tell "the server
has sent all there is" from "the socket is empty for a moment".
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from typing import Any, Final

MORE: Final = 0  # `limit` messages handled
DRAINED: Final = 1  # nothing more for now: wait on the socket
REPLY: Final = 2  # the server asked for a status update
ENDED: Final = 3  # the server ended the stream; detail: (SQLSTATE, message) of its error, or None
BROKEN: Final = 4  # the connection failed; detail: libpq's message
NONE: Final = 0  # the kind of the last message read
DATA: Final = 1
KEEPALIVE: Final = 2  # after the last data: the server has sent all there is

_XLOGDATA: Final = 0x77  # 'w': dataStart, walEnd, sendTime, then the plugin's message
_XLOGDATA_HEADER: Final = 25
_KEEPALIVE: Final = 0x6B  # 'k': walEnd, sendTime, replyRequested
_KEEPALIVE_SIZE: Final = 18
_PGRES_FATAL_ERROR: Final = 7
_PG_DIAG_SQLSTATE: Final = ord("C")
_U64 = struct.Struct(">Q")
_U64_PAIR = struct.Struct(">QQ")

Result = tuple[int, int, int, Any]  # status, wal_end, last, detail


class Reader:
    """`reader(pgconn, handle, limit)` as `_pgwire.read`, on the libpq that `path` (psycopg2's
    loaded extension) links: a PGconn must only be handed to the library that made it."""

    def __init__(self, path: str) -> None:
        # RTLD_NOLOAD: the extension psycopg2 already loaded; dlsym follows its dependencies.
        # PyDLL keeps the GIL across calls, as _pgwire.c does: libpq's socket is non-blocking,
        # so no call waits, and three calls per message need not hand the GIL around.
        lib = ctypes.PyDLL(path, mode=os.RTLD_NOW | os.RTLD_NOLOAD)
        p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        self._get_copy_data = _fn(lib.PQgetCopyData, i, p, ctypes.POINTER(p), i)
        self._consume_input = _fn(lib.PQconsumeInput, i, p)
        self._free_mem = _fn(lib.PQfreemem, None, p)
        self._get_result = _fn(lib.PQgetResult, p, p)
        self._result_status = _fn(lib.PQresultStatus, i, p)
        self._result_error_message = _fn(lib.PQresultErrorMessage, s, p)
        self._result_error_field = _fn(lib.PQresultErrorField, s, p, i)
        self._clear = _fn(lib.PQclear, None, p)
        self._error_message = _fn(lib.PQerrorMessage, s, p)

    def __call__(self, conn: int, handle: Callable[[bytes, int], object], limit: int) -> Result:
        buf = ctypes.c_void_p()
        ref = ctypes.byref(buf)
        wal_end, last, consumed, handled = 0, NONE, False, 0
        while handled < limit:
            size = self._get_copy_data(conn, ref, 1)
            if size == 0:  # as psycopg2: read the socket when libpq has nothing left
                if consumed:
                    return DRAINED, wal_end, last, None
                if not self._consume_input(conn):
                    return BROKEN, wal_end, last, self._text(self._error_message(conn))
                consumed = True
                continue
            consumed = False  # a read fills libpq's buffer (16 kB) at most: the socket may hold more
            if size == -1:
                return ENDED, wal_end, last, self._ended(conn)
            if size < 0:
                return BROKEN, wal_end, last, self._text(self._error_message(conn))
            message = ctypes.string_at(buf, size)
            self._free_mem(buf)
            if message[0] == _XLOGDATA and size >= _XLOGDATA_HEADER:
                start, end = _U64_PAIR.unpack_from(message, 1)
                if end:  # 0: a Relation message, sent ahead of its change
                    wal_end = end
                last = DATA
                handle(message[_XLOGDATA_HEADER:], start)
                handled += 1
            elif message[0] == _KEEPALIVE and size >= _KEEPALIVE_SIZE:
                wal_end, last = _U64.unpack_from(message, 1)[0], KEEPALIVE
                if message[17]:
                    return REPLY, wal_end, last, None
            else:
                return BROKEN, wal_end, last, "unrecognized replication message type"
        return MORE, wal_end, last, None

    def _ended(self, conn: int) -> tuple[str | None, str] | None:
        """The server's error that ended the stream, as (SQLSTATE, message), or None."""
        result = self._get_result(conn)
        if not result:
            return None
        try:
            if self._result_status(result) != _PGRES_FATAL_ERROR:
                return None
            sqlstate = self._result_error_field(result, _PG_DIAG_SQLSTATE)
            return (sqlstate.decode() if sqlstate else None,
                    self._text(self._result_error_message(result)))
        finally:
            self._clear(result)

    @staticmethod
    def _text(message: bytes | None) -> str:
        return (message or b"").decode("utf-8", "replace")


def _fn(fn: Any, restype: Any, *argtypes: Any) -> Any:
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn
