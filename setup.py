"""Optional mypyc build of the per-event hot paths; all other metadata is in pyproject.toml.

The modules in HOT_PATH are compiled to C extensions when mypy, a C compiler and Python's
headers are there: the bridge's decode/render path (about a quarter faster on
bench/render.py) and the capture connector's streaming loop, pgoutput decoding and
Debezium encoding (connector CPU per row 13.4 → 9–10.5 µs on bench/capture.py).
Whenever that is not possible — or ONESTOP_PURE_PYTHON=1 is set at install time — the
package installs as pure Python and behaves the same. `bridge.compiled()` says which one runs.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
# The per-event paths. mypyc enforces annotations at run time (a value of another type
# than annotated raises TypeError), and compiled classes and functions cannot be
# monkeypatched or subclassed, so nothing here may rely on either.
HOT_PATH = [
    "bridge/decode/envelope.py",
    "bridge/decode/types.py",
    "bridge/mapping.py",
    "bridge/model.py",
    "bridge/phone.py",
    "bridge/pipeline.py",
    "bridge/templates/__init__.py",
    "bridge/transitions.py",
    "connectors/pgoutput.py",
    "connectors/envelope.py",
    "connectors/types.py",
    "connectors/temporal.py",
    "connectors/stream.py",
    "connectors/delivery.py",
]
# One shared library holds all the compiled code, at the top level as mypyc expects (it
# derives each module's __file__ from the library's place), under a fixed name rather than
# mypyc's `<hash>__mypyc`. Editable installs map top-level extensions like packages.
GROUP = "onestop_bridge"


def pure_python(reason: str) -> list:
    """No extensions; and none left from an earlier editable build, which put them in the
    source tree where they would be imported instead of the .py files."""
    for source in [*HOT_PATH, f"{GROUP}__mypyc.py"]:
        for path in glob.glob(os.path.join(HERE, os.path.splitext(source)[0] + ".*")):
            if path.endswith((".so", ".pyd")):
                os.remove(path)
    print(f"onestop-bridge: {reason}, installing pure Python", file=sys.stderr)
    return []


def drop_stale_stubs() -> None:
    """Remove the in-place extension of a module no longer in HOT_PATH: it would still be
    imported instead of its .py, and fail to find its code in the rebuilt library."""
    wanted = {os.path.splitext(source)[0] for source in HOT_PATH}
    for package in ("bridge", "connectors"):
        for path in glob.glob(os.path.join(HERE, package, "**", "*.so"), recursive=True):
            module = os.path.relpath(path, HERE).split(".")[0]
            if module not in wanted:
                os.remove(path)


def accelerator() -> list:
    if {"egg_info", "dist_info"} & set(sys.argv[1:]):
        return []  # pip only reads the metadata: spare mypy's type check (~5 s)
    drop_stale_stubs()
    if os.environ.get("ONESTOP_PURE_PYTHON", "") not in ("", "0"):
        return pure_python("ONESTOP_PURE_PYTHON is set")
    try:
        from mypyc.build import mypycify
    except ImportError:  # built without build isolation, mypy absent
        return pure_python("mypy is not installed")
    try:
        # Missing imports: the isolated build environment has mypy but not the runtime
        # dependencies (pydantic...); their values are then taken as Any (a little slower).
        extensions = mypycify(["--ignore-missing-imports", *HOT_PATH], group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypy reports type errors by exiting
        return pure_python(f"mypyc failed ({exc!r})")
    for extension in extensions:
        extension.optional = True  # a compiler error skips it instead of failing the install
    return extensions


class BuildExt(build_ext):
    """All or nothing: each module's stub extension imports the shared library, and an
    extension is imported in preference to its .py, so a stub whose shared library did not
    build would break `import bridge.pipeline` instead of falling back."""

    def build_extensions(self) -> None:
        super().build_extensions()
        built = [self.get_ext_fullpath(extension.name) for extension in self.extensions]
        if all(os.path.exists(path) for path in built):
            return
        for path in built:
            if os.path.exists(path):
                os.remove(path)
        self.extensions = pure_python("the C build failed")  # nothing left to copy or list


setup(ext_modules=accelerator(), cmdclass={"build_ext": BuildExt})
