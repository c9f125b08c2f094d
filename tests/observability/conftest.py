"""Shared fixtures for the observability tests: the sandbox in-process and filled ledgers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from obs_system import System, link_follower  # noqa: E402

from bridge.embedded import EmbeddedBroker, EmbeddedPostgres  # noqa: E402
from bridge.sandbox import SandboxHandle, run_in_thread  # noqa: E402


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = run_in_thread(scenario={})
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def system(pg: EmbeddedPostgres, broker: EmbeddedBroker,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Connector + bridge + sandbox on the session's PostgreSQL and broker (started once)."""
    running = System(pg, broker, tmp_path_factory.mktemp("system"))
    try:
        running.start()
        link_follower(running)
        yield running
    finally:
        running.stop()
