"""`onestop-bridge render [FILE|-] [--config FILE]`: the dry run of design.md §4.

Reads Debezium change-event values, one JSON document per line, and prints every
notification the bridge would send as one JSON object per line, in input order.
Sends nothing, needs no Kafka. Bad lines are reported on stderr with their line
number and skipped; exit 1 if any was skipped, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from bridge.errors import BridgeError, ConfigError
from bridge.model import Notification
from bridge.pipeline import Pipeline
from bridge.settings import load_settings
from bridge.transitions import MemoryStateStore


def render_lines(pipeline: Pipeline, lines: Iterable[bytes | str], errors: TextIO
                 ) -> Iterator[Notification | None]:
    """Yield notifications in input order; yield None once per skipped (bad) line.

    Lines are best given as bytes, as a file opened in binary gives them: the JSON parser
    reads UTF-8 directly, and a line that is not UTF-8 is one bad line, not the end of input.
    """
    store = MemoryStateStore()
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if number == 1:  # a file saved by Windows Notepad or Excel starts with a BOM
            line = line.removeprefix(b"\xef\xbb\xbf") if isinstance(line, bytes) else line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            event = pipeline.decode(line)
            if event is None:
                continue
            eid = pipeline.event_id(event)
            if eid in seen:  # the same change event twice is one message, not two
                continue
            notifications = pipeline.notify(event, store)
            seen.add(eid)
        except BridgeError as exc:
            errors.write(f"line {number}: {exc.message}\n")
            yield None
            continue
        yield from notifications


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop-bridge render", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default="-", help="change events, one per line ('-' = stdin)")
    parser.add_argument("--config", help="TOML configuration file")
    args = parser.parse_args(argv)
    try:
        pipeline = Pipeline(load_settings(args.config))
    except ConfigError as exc:
        print(f"onestop-bridge render: {exc.message}", file=sys.stderr)
        return 2
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    try:
        source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"onestop-bridge render: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    skipped = 0
    with source:
        for item in render_lines(pipeline, source, sys.stderr):
            if item is None:
                skipped += 1
            else:
                sys.stdout.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
    if skipped:
        print(f"onestop-bridge render: {skipped} line(s) skipped", file=sys.stderr)
    return 1 if skipped else 0
