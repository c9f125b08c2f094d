"""The install compiled the render hot path wherever it can (setup.py).

setup.py falls back to pure Python quietly, by design for users without a compiler. A type
error in a hot-path module also makes mypyc give up, and then `render` loses a quarter of its
speed (bench/render.py) with nothing else to show it: this test is what shows it.
"""

from __future__ import annotations

import os
import shutil

import bridge


def test_the_hot_path_is_compiled_where_a_compiler_is_present() -> None:
    can_compile = shutil.which(os.environ.get("CC", "gcc")) is not None
    wanted = os.environ.get("ONESTOP_PURE_PYTHON", "") in ("", "0")
    assert bridge.compiled() == (can_compile and wanted), (
        "the hot path was not compiled: run `.venv/bin/pip install -v -e .` and look for "
        "'onestop-bridge: … installing pure Python' (a mypy error in a module of setup.py's "
        "HOT_PATH is the usual cause); set ONESTOP_PURE_PYTHON=1 to test a pure install")


def test_the_replication_stream_is_read_through_psycopg2s_own_libpq() -> None:
    """Compiled: the native reader; pure Python: its ctypes twin (connectors/pgwire.py). Both
    bind to psycopg2's libpq at import; if that ever fails (a psycopg2 built another way),
    capture warns and reads through read_message(), which confirms keepalives on its own."""
    from connectors import pgwire, wire

    assert wire._read is not None
    assert isinstance(wire._read, pgwire.Reader) == (not bridge.compiled())
