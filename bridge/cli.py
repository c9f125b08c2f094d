"""`onestop-bridge <command> …`: one entry point for every process and helper."""

from __future__ import annotations

import gc
import importlib
import sys

# command → (module, one-line help). Each module exposes main(argv) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("bridge.render", "dry run: change events in, the notices citizens would get out"),
    "run": ("bridge.run", "the bridge: Kafka → citizens, with /metrics, /healthz, /readyz, webhook"),
    "capture": ("connectors.cli", "the connector: PostgreSQL (pgoutput) or SQL polling → Kafka"),
    "dlq": ("bridge.dlq.cli", "inspect and replay the dead-letter topic"),
    "sandbox": ("bridge.sandbox.cli", "local imitation of the Zalo OA/ZNS APIs and an SMS gateway"),
    "demo": ("bridge.demo", "everything on one machine: a realistic day of dossiers"),
    "report": ("bridge.report", "management report from the ledger (text, html, csv)"),
    "qr": ("bridge.citizen.qr", "draw the QR code printed on the receipt"),
    "feedback": ("bridge.citizen.feedback_cli", "export citizens' ratings and feedback"),
    "broadcast": ("bridge.citizen.broadcast", "send news or an emergency notice to opted-in followers"),
}

BATCH_COMMANDS = frozenset({"render"})


def tune_gc(*, batch: bool) -> None:
    """Objects alive after start-up (modules, templates, settings) are frozen out of the
    collector's passes. A batch command also collects less often: it allocates several
    short-lived, cycle-free objects per change event, and with the default threshold
    (700) the passes over the growing state cost a fifth of `render`'s time
    (bench/render.py). Long-running processes keep the default thresholds, so cyclic
    garbage (httpx's, exceptions') never piles up between collections."""
    gc.freeze()
    if batch:
        gc.set_threshold(50_000, 20, 20)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: onestop-bridge <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `onestop-bridge <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"onestop-bridge: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    tune_gc(batch=name in BATCH_COMMANDS)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
