"""`onestop-bridge report`: the management view of the delivery ledger.

    onestop-bridge report --from 2026-11-01 --to 2026-11-30 [--format text|html|csv]
                          [--config FILE] [--out FILE]

Notifications by kind and channel, delivery success, how fast notices left after the
database commit, results ready by the appointment date, cost and savings in VND against
sending every notice by SMS (``prices.sms``), and followers linked. Reads `ledger.url`
(the same TOML/env settings as `run`) and never writes to it. Text for a terminal or an
e-mail, HTML (one self-contained file with charts) for a director, CSV for a spreadsheet.
Exit status: 0 done, 2 bad arguments or configuration, 1 ledger unreadable.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import ConfigError
from bridge.report import html, table, text
from bridge.report.ledger_view import Period, followers, notices, open_engine, results
from bridge.report.summary import Report, build
from bridge.settings import load_settings

FORMATS = {"text": text.render, "html": html.render, "csv": table.render}


def build_report(engine: Engine, period: Period, sms_price: int) -> Report:
    return build(period, sms_price, notices(engine, period, sms_price), results(engine, period),
                 followers(engine, period))


def parse_day(value: str) -> date:
    """``2026-11-27`` or ``27/11/2026``."""
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD or dd/mm/yyyy)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onestop-bridge report",
                                description="Management report from the delivery ledger.")
    p.add_argument("--from", dest="first", type=parse_day,
                   help="first day, inclusive (default: first day of this month)")
    p.add_argument("--to", dest="last", type=parse_day, help="last day, inclusive (default: today)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text")
    p.add_argument("--config", help="the bridge's TOML settings (ledger.url, prices, timezone)")
    p.add_argument("--out", help="write to this file instead of stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    zone = ZoneInfo(settings.source.timezone)
    today = datetime.now(zone).date()
    last = args.last or today
    first = args.first or last.replace(day=1)
    if first > last:
        shown = "" if args.last else f" (--to defaults to today, {last:%d/%m/%Y})"
        return _fail(f"--from {first:%d/%m/%Y} is after --to {last:%d/%m/%Y}{shown}", 2)
    if last >= date.max - timedelta(days=1):
        return _fail(f"--to {last:%d/%m/%Y} is out of range", 2)
    try:
        report = _read(settings.ledger.url, Period(first, last, zone), settings.prices.sms)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except SQLAlchemyError as exc:
        return _fail(f"cannot read the ledger: {exc.__class__.__name__}: "
                     f"{str(exc).splitlines()[0]}", 1)
    if last > today:
        print(f"onestop-bridge report: the period ends after today ({today:%d/%m/%Y}): "
              "its figures are not final", file=sys.stderr)
    output = FORMATS[args.format](report)
    if not args.out:
        sys.stdout.write(output)
        return 0
    try:
        Path(args.out).write_text(output, encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror}", 2)
    return 0


def _read(url: str, period: Period, sms_price: int) -> Report:
    engine = open_engine(url)
    try:
        return build_report(engine, period, sms_price)
    finally:
        engine.dispose()


def _fail(message: str, status: int) -> int:
    print(f"onestop-bridge report: {message}", file=sys.stderr)
    return status
