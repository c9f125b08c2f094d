"""Reading the replication stream (connectors/wire.py): the native reader, its ctypes twin
for pure-Python installs and psycopg2's read_message() give the same changes, say when the
server has sent all there is, and raise what psycopg2 raises when the server ends the
stream — the reconnect decision reads it. The two libpq readers confirm nothing on their own."""

from __future__ import annotations

import array
import fcntl
import logging
import select
import termios
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg2
import psycopg2._psycopg
import psycopg2.errors
import pytest
from psycopg2.extras import LogicalReplicationConnection

import bridge

from capture_support import insert_dossier
from connectors import pgwire, wire
from connectors.capture import _transient
from connectors.stream import FEEDBACK_INTERVAL_S
from waiting import wait_for

pytestmark = pytest.mark.services
# The native reader is built with the rest of the hot path (tests/unit/test_build.py).
LIBPQ_READERS = [pytest.param("native", marks=pytest.mark.skipif(
    not bridge.compiled(), reason="pure-Python install: no native reader")), "ctypes"]
READERS = [*LIBPQ_READERS, "psycopg2"]


@pytest.fixture()
def stream(capture_db: Any, request: pytest.FixtureRequest) -> Iterator[wire.StreamReader]:
    if request.param == "native":
        assert wire._read is not None and not isinstance(wire._read, pgwire.Reader), (
            "compiled, but the native reader could not bind to libpq")
    capture_db.execute(f'CREATE PUBLICATION "{capture_db.name}" FOR TABLE dossiers')
    capture_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (capture_db.name,))
    conn = psycopg2.connect(capture_db.dsn, connection_factory=LogicalReplicationConnection)
    cursor = conn.cursor()
    cursor.start_replication(slot_name=capture_db.name, decode=False,
                             options={"proto_version": "1", "publication_names": capture_db.name},
                             status_interval=FEEDBACK_INTERVAL_S)
    reader = wire.StreamReader(cursor)
    if request.param == "ctypes":  # a pure-Python install's reader
        reader._read = pgwire.Reader(psycopg2._psycopg.__file__)  # noqa: SLF001
    elif request.param == "psycopg2":  # where neither reaches psycopg2's libpq
        reader._read = None  # noqa: SLF001
    yield reader
    conn.close()


def _step(reader: wire.StreamReader, handle: wire.Handler = lambda payload, lsn: None) -> int:
    """One burst, then, if drained, a short wait for the socket (as the stream's loop does)."""
    status = reader.burst(handle, 512)
    if status == wire.DRAINED:
        select.select([reader.cursor], [], [], 0.1)
    return status


def _read_commits(reader: wire.StreamReader, commits: int) -> list[tuple[int, int]]:
    """(pgoutput tag, lsn) of each message, until `commits` transactions have come."""
    got: list[tuple[int, int]] = []

    def more() -> bool:
        _step(reader, lambda payload, lsn: got.append((payload[0], lsn)))
        return sum(tag == ord("C") for tag, _ in got) >= commits

    wait_for(more, timeout=15, interval=0, message=f"{commits} transactions")
    return got


@pytest.mark.parametrize("stream", READERS, indirect=True)
def test_both_readers_hand_over_each_change_with_its_lsn(capture_db, stream) -> None:
    conn = capture_db.connect()
    insert_dossier(conn, "WIRE-1")
    insert_dossier(conn, "WIRE-2")
    conn.close()
    messages = _read_commits(stream, 2)
    assert bytes(tag for tag, _ in messages) == b"BRICBIC"  # the relation is described once
    commits = [lsn for tag, lsn in messages if tag == ord("C")]
    assert 0 < commits[0] < commits[1] <= stream.wal_end
    wait_for(lambda: _drained_and_caught_up(stream), timeout=15, interval=0,
             message="the server's word that it has sent all there is")


def _drained_and_caught_up(reader: wire.StreamReader) -> bool:
    return _step(reader) == wire.DRAINED and reader.caught_up


def _unread_bytes(cursor: Any) -> int:
    waiting = array.array("i", [0])
    fcntl.ioctl(cursor.connection.fileno(), termios.FIONREAD, waiting)
    return waiting[0]


@pytest.mark.parametrize("stream", LIBPQ_READERS, indirect=True)
def test_a_burst_reads_on_while_the_socket_holds_more(capture_db, stream) -> None:
    """A backlog is read a burst at a time, not libpq's 16 kB buffer at a time: a burst that
    stopped at each refill said "drained" ~50 changes in, and the stream's loop went through
    its housekeeping and a select() for every 16 kB (2,000 times per 100,000 changes).
    psycopg2's read_message() is left out: a keepalive amid the data makes it return None
    once it has read the socket in that call (seen under load), whatever the socket holds."""
    conn = capture_db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT generate_series(1, 600)")
        for (n,) in cur.fetchall():
            insert_dossier(conn, f"WIRE-{n}")
    conn.commit()  # one transaction of ~190 kB of pgoutput
    wait_for(lambda: _unread_bytes(stream.cursor) >= 48 * 1024, timeout=15, interval=0.01,
             message="three times libpq's buffer waiting in the socket")
    handled: list[int] = []
    assert stream.burst(lambda payload, lsn: handled.append(payload[0]), 512) == wire.MORE
    assert len(handled) == 512 and handled[:2] == [ord("B"), ord("R")]
    conn.close()


@pytest.mark.parametrize("stream", LIBPQ_READERS, indirect=True)
def test_the_slot_is_confirmed_only_as_far_as_the_connector_says(capture_db, stream) -> None:
    """The rest of the database moves on; the walsender's keepalives report its WAL end. The
    slot stays where the connector confirmed it: only the connector knows the bound Kafka
    holds (offsets.ConfirmLimit). psycopg2's read_message() fails this: it confirms the
    keepalive's WAL end itself at its next status update."""
    conn = capture_db.connect()
    insert_dossier(conn, "WIRE-1")
    confirmed = _read_commits(stream, 1)[-1][1]  # the commit's end: all of it is read
    conn.cursor().execute("CREATE TABLE elsewhere (n int)")  # not published
    watch_until = time.monotonic() + 2.5 * FEEDBACK_INTERVAL_S

    def moved_on_and_watched() -> bool:
        conn.cursor().execute("INSERT INTO elsewhere VALUES (1)")
        _step(stream)
        stream.cursor.send_feedback(flush_lsn=confirmed, force=True)  # as the stream does, each second
        return stream.wal_end > confirmed and time.monotonic() >= watch_until

    wait_for(moved_on_and_watched, timeout=15, interval=0.1,
             message="keepalives past the confirmed position, for two status intervals")
    assert capture_db.confirmed_flush() == confirmed
    conn.close()


@pytest.mark.parametrize("stream", READERS, indirect=True)
def test_a_terminated_walsender_raises_admin_shutdown_which_reconnects(capture_db, stream) -> None:
    capture_db.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                       "WHERE slot_name = %s", (capture_db.name,))

    def raised() -> BaseException | None:
        try:
            _step(stream)
        except psycopg2.Error as exc:
            return exc
        return None

    error = wait_for(raised, timeout=15, interval=0, message="the stream's end")
    assert isinstance(error, psycopg2.OperationalError), error
    if error.pgcode is not None:  # the server's ErrorResponse reached us before the socket closed
        assert isinstance(error, psycopg2.errors.AdminShutdown) and error.pgcode == "57P01"
        assert "terminating connection" in error.pgerror
    assert _transient(error)


def test_a_server_error_keeps_its_class_and_sqlstate() -> None:
    """What decides between reconnecting and stopping (capture._transient) reads both."""
    shutdown = wire._server_error(("57P01", "FATAL:  terminating connection due to administrator command"))
    assert isinstance(shutdown, psycopg2.errors.AdminShutdown) and shutdown.pgcode == "57P01"
    internal = wire._server_error(("XX000", "ERROR:  could not map filenode"))
    assert isinstance(internal, psycopg2.errors.InternalError_) and not _transient(internal)
    unknown = wire._server_error(("ZZ999", "ERROR:  new in a later PostgreSQL"))
    assert isinstance(unknown, psycopg2.DatabaseError) and unknown.pgcode == "ZZ999"
    assert isinstance(wire._server_error((None, "no SQLSTATE")), psycopg2.OperationalError)


def test_without_psycopg2s_libpq_capture_says_what_read_message_risks(monkeypatch, caplog) -> None:
    monkeypatch.setattr(wire._psycopg, "__file__", "/nowhere/_psycopg.so")
    read, why = wire._libpq_reader()
    assert read is None and "/nowhere/_psycopg.so" in why
    monkeypatch.setattr(wire, "_read", read)
    monkeypatch.setattr(wire, "_unreachable", why)
    with caplog.at_level(logging.WARNING, "onestop.capture.wire"):
        reader = wire.StreamReader(SimpleNamespace(connection=SimpleNamespace(pgconn_ptr=0)))
    assert reader._read is None  # noqa: SLF001
    assert "read_message()" in caplog.text and "new snapshot" in caplog.text and why in caplog.text
