"""Fixtures for the connector tests: one fresh database, slot, publication and topic prefix
per test (services are shared per session). Helpers live in capture_support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.settings import Settings
from capture_support import REFERENCE_SQL, CaptureDb, CaptureThread, TopicReader
from waiting import wait_for


@pytest.fixture()
def capture_db(pg: Any, broker: Any, unique_name: str) -> Iterator[CaptureDb]:
    pg.create_database(unique_name, REFERENCE_SQL)
    db = CaptureDb(pg, unique_name, broker.bootstrap)
    yield db
    admin = pg.connect()  # fresh: a test may have restarted the server
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE database = %s AND active_pid IS NOT NULL", (unique_name,))
        wait_for(lambda: not _active_slots(cur, unique_name), timeout=15, message="slots released")
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s", (unique_name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)')
    admin.close()


def _active_slots(cur: Any, db: str) -> bool:
    cur.execute("SELECT count(*) FROM pg_replication_slots WHERE database = %s AND active", (db,))
    return bool(cur.fetchone()[0])


@pytest.fixture()
def start_capture() -> Iterator[Callable[..., CaptureThread]]:
    running: list[CaptureThread] = []

    def start(settings: Settings, mode: str = "pgoutput") -> CaptureThread:
        if mode == "polling":
            from connectors.polling import PollingCapture

            thread = CaptureThread(lambda stop: PollingCapture(settings, stop))
        else:
            from connectors.capture import PgCapture

            thread = CaptureThread(lambda stop: PgCapture(settings, stop))
        running.append(thread)
        return thread

    yield start
    for thread in running:
        thread.stop_event.set()
        thread.thread.join(60)


@pytest.fixture()
def reader(capture_db: CaptureDb) -> Iterator[Callable[[str], TopicReader]]:
    opened: list[TopicReader] = []

    def open_reader(topic: str | None = None) -> TopicReader:
        r = TopicReader(capture_db.bootstrap, topic or capture_db.topic)
        opened.append(r)
        return r

    yield open_reader
    for r in opened:
        r.close()


