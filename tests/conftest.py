"""Real services for the tests: a throwaway PostgreSQL cluster and the tansu broker.

Both start once per session on free loopback ports. Where `docker` works and
ONESTOP_TEST_DOCKER=1 is set, testcontainers may be used instead (optional path).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Test modules are imported by path (--import-mode=importlib, so equal basenames in two
# folders don't clash); shared helper modules are found on these paths.
for _folder in [Path(__file__).resolve().parent, *sorted(Path(__file__).resolve().parent.iterdir())]:
    if _folder.is_dir() and not _folder.name.startswith((".", "_")):
        sys.path.insert(0, str(_folder))

from bridge.embedded import EmbeddedBroker, EmbeddedPostgres  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    server = EmbeddedBroker().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_config(broker: EmbeddedBroker) -> dict[str, object]:
    """librdkafka settings for tests: small session/poll timeouts make group joins fast."""
    return {
        "bootstrap.servers": broker.bootstrap,
        "session.timeout.ms": 3000,
        "max.poll.interval.ms": 10000,
        "heartbeat.interval.ms": 500,
    }


@pytest.fixture()
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/slot/group name unique to the test (services are shared per session)."""
    import re
    import uuid

    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:30]
    return f"{base}_{uuid.uuid4().hex[:6]}"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TZ", "UTC")
    _check_compiled_is_current()


def pytest_report_header() -> str:
    import bridge

    return f"bridge: {'mypyc-compiled hot path' if bridge.compiled() else 'pure Python'}"


def _check_compiled_is_current() -> None:
    """An editable install compiles the hot path in place (setup.py), and an extension is
    imported in preference to its .py: after an edit, the tests would run the old code."""
    import bridge

    if not bridge.compiled():
        return
    # Every extension in the tree, not only those imported yet: most are imported later, by
    # the tests themselves. The hand-written C ones (`_rowjson.c`) count too.
    stale = []
    for library in [*ROOT.glob("bridge/**/*.so"), *ROOT.glob("connectors/**/*.so")]:
        stem = library.name.split(".")[0]
        sources = [library.with_name(stem + suffix) for suffix in (".py", ".c")]
        if any(s.exists() and s.stat().st_mtime > library.stat().st_mtime for s in sources):
            stale.append(str(library.relative_to(ROOT).with_name(stem)))
    if stale:
        pytest.exit(f"compiled modules older than their source: {', '.join(sorted(stale))}; "
                    f"rebuild with `.venv/bin/pip install -e .` (or ONESTOP_PURE_PYTHON=1)", 2)
