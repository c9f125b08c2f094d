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

from setuptools import Extension, setup
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
# Hand-written C, built and dropped together with the mypyc extensions (connectors/rowjson.py,
# connectors/wire.py).
NATIVE = {"connectors._rowjson": "connectors/_rowjson.c", "connectors._pgwire": "connectors/_pgwire.c"}
# One shared library holds all the compiled code, at the top level as mypyc expects (it
# derives each module's __file__ from the library's place), under a fixed name rather than
# mypyc's `<hash>__mypyc`. Editable installs map top-level extensions like packages.
GROUP = "onestop_bridge"


def remove_extensions(keep: list[str]) -> None:
    """Delete the extensions an earlier editable build left in the source tree, except
    those of `keep`: an extension is imported in preference to its .py, and the stub of a
    module taken out of HOT_PATH would look for its code in a library that lacks it."""
    wanted = {os.path.splitext(source)[0] for source in keep}
    found = glob.glob(os.path.join(HERE, f"{GROUP}__mypyc.*"))
    for package in ("bridge", "connectors"):
        found += glob.glob(os.path.join(HERE, package, "**", "*.*"), recursive=True)
    for path in found:
        if path.endswith((".so", ".pyd")) \
                and os.path.relpath(path, HERE).split(".")[0] not in wanted:
            os.remove(path)


def pure_python(reason: str) -> list:
    remove_extensions(keep=[])
    print(f"onestop-bridge: {reason}, installing pure Python", file=sys.stderr)
    return []


def accelerator() -> list:
    if {"egg_info", "dist_info"} & set(sys.argv[1:]):
        return []  # pip only reads the metadata: spare mypy's type check (~5 s)
    remove_extensions(keep=[*HOT_PATH, *NATIVE.values(), f"{GROUP}__mypyc.py"])
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
        extensions += [Extension(name, [source]) for name, source in NATIVE.items()]
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
