"""onestop-bridge: one-stop-shop dossier changes → Vietnamese notices via Zalo OA, ZNS or SMS."""

from __future__ import annotations

__version__ = "0.1.0"


def compiled() -> bool:
    """True when the hot path runs as mypyc-compiled extensions (see setup.py)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    import bridge.pipeline

    return (bridge.pipeline.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))
