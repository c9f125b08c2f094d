"""onestop-bridge: one-stop-shop dossier changes → Vietnamese notices via Zalo OA, ZNS or SMS."""

__version__ = "0.1.0"
