"""Which route installers `onestop-bridge run` adds to its HTTP app.

Each entry is ``"module:function"`` with ``function(app: web.Application, ctx: AppContext)``.
An entry whose module does not exist is skipped (that part is not installed in this
build); one that exists but fails to import, or lacks the function, is an error.
"""

from __future__ import annotations

import importlib
import importlib.util

from bridge.http.app import RouteInstaller

INSTALLERS: list[str] = [
    "bridge.citizen.routes:install",   # POST /webhook/zalo and the citizen side's pages
]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def default_installers(entries: list[str] | None = None) -> list[RouteInstaller]:
    found: list[RouteInstaller] = []
    for entry in INSTALLERS if entries is None else entries:
        module_name, _, function = entry.partition(":")
        if not _module_exists(module_name):
            continue
        module = importlib.import_module(module_name)
        installer = getattr(module, function or "install", None)
        if installer is None:
            raise ImportError(f"{module_name} has no route installer {function or 'install'!r}")
        found.append(installer)
    return found
