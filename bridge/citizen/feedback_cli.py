"""``onestop-bridge feedback export --from DATE [--to DATE] [--out FILE] [--config FILE]``.

Writes ratings and free-text feedback received in [from, to] (dates in Asia/Ho_Chi_Minh,
both inclusive; `--to` defaults to today) as CSV (UTF-8 with BOM, so spreadsheet programs
show the diacritics): ``type,at,dossier_code,user_id,score,text``. Text that a
spreadsheet would run as a formula (=, +, -, @) is prefixed with an apostrophe.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from bridge.citizen.store import CitizenStore
from bridge.errors import ConfigError
from bridge.ledger import Ledger
from bridge.settings import load_settings

COLUMNS = ("type", "at", "dossier_code", "user_id", "score", "text")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows(store: CitizenStore, start: date, end: date, zone: ZoneInfo) -> list[dict[str, object]]:
    start_ms = int(datetime.combine(start, time(0), zone).timestamp() * 1000)
    end_ms = int(datetime.combine(end + timedelta(days=1), time(0), zone).timestamp() * 1000)

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(zone).isoformat(
            timespec="seconds")

    out: list[tuple[int, dict[str, object]]] = []
    for r in store.ratings_between(start_ms, end_ms):
        out.append((r["rated_at_ms"], {"type": "rating", "at": when(r["rated_at_ms"]),
                                       "dossier_code": r["dossier_code"], "user_id": r["user_id"],
                                       "score": r["score"], "text": ""}))
    for f in store.feedback_between(start_ms, end_ms):
        out.append((f["at_ms"], {"type": "feedback", "at": when(f["at_ms"]),
                                 "dossier_code": f["dossier_code"] or "", "user_id": f["user_id"],
                                 "score": "", "text": f["text"]}))
    return [row for _, row in sorted(out, key=lambda item: item[0])]


def write_csv(records: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell(record[k]) for k in COLUMNS})
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop-bridge feedback",
                                     description="Citizens' ratings and feedback.")
    sub = parser.add_subparsers(dest="action", required=True)
    export = sub.add_parser("export", help="write ratings and feedback as CSV")
    export.add_argument("--from", dest="start", required=True, type=date.fromisoformat,
                        help="first day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (default today)")
    export.add_argument("--out", help="CSV file (default: stdout)")
    export.add_argument("--config", help="TOML configuration file")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        settings = load_settings(args.config)
        ledger = Ledger.open(settings.ledger.url)
    except ConfigError as exc:
        print(f"onestop-bridge feedback: {exc}", file=sys.stderr)
        return 2
    zone = ZoneInfo(settings.source.timezone)
    end = args.end or datetime.now(zone).date()
    if end < args.start:
        print("onestop-bridge feedback: --to is before --from", file=sys.stderr)
        return 2
    try:
        records = rows(CitizenStore(ledger.engine), args.start, end, zone)
    finally:
        ledger.close()
    text = write_csv(records)
    if args.out:
        with open(args.out, "w", encoding="utf-8-sig", newline="") as handle:
            handle.write(text)
        print(f"{len(records)} rows written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
