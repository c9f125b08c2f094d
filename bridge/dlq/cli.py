"""`onestop-bridge dlq list|show|replay`: the operator's dead-letter tool.

    onestop-bridge dlq list   [filters] [--json]
    onestop-bridge dlq show   PARTITION:OFFSET
    onestop-bridge dlq replay [filters] [--dry-run] [--yes] [--limit N] [--audit-log FILE]

Filters: --kind KIND, --error CLASS|CODE|REASON, --dossier CODE, --since/--until ISO time.
Replaying more than 10 records asks for confirmation (--yes skips it; without a terminal
and without --yes the tool refuses). Each replayed record gets an audit line: JSON on
stdout, in the ledger's replay_audit table, and in --audit-log when given.

Exit status: 0 done, 1 some records could not be replayed, 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from bridge.dlq import headers as h
from bridge.dlq.reader import DlqRecord, Filters, read_topic
from bridge.dlq.replay import Progress, json_line, replay
from bridge.errors import ConfigError
from bridge.kafka_clients import kafka_common, producer_config
from bridge.logs import setup_logging
from bridge.settings import Settings, load_settings

CONFIRM_ABOVE = 10


def parse_args(argv: list[str]) -> argparse.Namespace:
    # --config and --topic go before or after the command (`dlq list --config F` is what
    # operators type); SUPPRESS keeps a command's absent option from hiding the other's.
    parser = argparse.ArgumentParser(prog="onestop-bridge dlq", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    for where, default in ((parser, None), (common, argparse.SUPPRESS)):
        where.add_argument("--config", default=default,
                           help="TOML settings file (ONESTOP_* variables override it)")
        where.add_argument("--topic", default=default,
                           help="dead-letter topic (default: <source.topic>.dlq)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list dead-lettered records", parents=[common])
    _filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = commands.add_parser("show", help="print one record fully", parents=[common])
    show.add_argument("position", help="PARTITION:OFFSET (or OFFSET on a one-partition topic)")
    again = commands.add_parser("replay", help="republish records to their source topic",
                                parents=[common])
    _filters(again)
    again.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    again.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    again.add_argument("--limit", type=int, help="replay at most N records (oldest first)")
    again.add_argument("--audit-log", help="also append audit lines to this file")
    return parser.parse_args(argv)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", help="notification kind, e.g. RECEIVED")
    parser.add_argument("--error", help="error class (RecipientError), code (-118) or reason")
    parser.add_argument("--dossier", help="dossier code")
    parser.add_argument("--since", type=_moment, help="failed at or after (ISO 8601)")
    parser.add_argument("--until", type=_moment, help="failed before (ISO 8601)")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.astimezone()  # naive = local time


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"onestop-bridge dlq: {exc}", file=sys.stderr)
        return 2
    # As `run` and `capture`: the clients' and the replay's log lines, phones and secrets masked.
    setup_logging(settings.log, secrets=settings)
    topic = args.topic or settings.source.topic + settings.kafka.dlq_topic_suffix
    records = list(read_topic(reader_config(settings), topic, _pipeline(settings)))
    if args.command == "show":
        return _show(records, args.position)
    filters = Filters(args.kind, args.error, args.dossier, args.since, args.until)
    selected = [r for r in records if filters.match(r)]
    if args.command == "list":
        return _list(selected, len(records), as_json=args.json)
    if args.limit is not None:
        selected = selected[:args.limit]
    return _replay(settings, selected, args)


def reader_config(settings: Settings) -> dict[str, Any]:
    """The DLQ reader's client settings: `kafka.extra` as `run` and `capture` take it, so a
    cluster that needs, say, `client.dns.lookup` is reachable by this tool too."""
    return kafka_common(settings) | settings.kafka.extra_for("consumer")


def _pipeline(settings: Settings) -> Any:
    try:
        from bridge.pipeline import Pipeline

        return Pipeline(settings)
    except Exception:  # only used to find dossier codes in values; optional
        return None


def _list(records: list[DlqRecord], total: int, *, as_json: bool) -> int:
    for record in records:
        s = record.summary()
        if as_json:
            print(json_line(s))
            continue
        at = record.failed_at
        # Local time with its offset: what --since reads back, offset or not.
        when = at.astimezone().isoformat(timespec="seconds") if at else "-"
        print(f"{record.position:>10}  {when:25}  {s['reason'] or '-':17} "
              f"{s['error_class'] or '-':15} {s['error_code'] or '-':>6}  {s['kind'] or '-':21} "
              f"{s['dossier_code'] or '-':28} {(s['message'] or '')[:60]}")
    counts: dict[str, int] = {}
    for record in records:
        reason = record.get(h.ERROR_REASON) or "unknown"
        counts[reason] = counts.get(reason, 0) + 1
    by = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"{len(records)} of {total} records; by reason: {by}", file=sys.stderr)
    return 0


def _show(records: list[DlqRecord], position: str) -> int:
    partition, _, offset = position.rpartition(":")
    for record in records:
        if str(record.offset) == offset and (not partition or str(record.partition) == partition):
            print(json.dumps(record.full(), ensure_ascii=False, indent=2))
            return 0
    print(f"onestop-bridge dlq: no record at {position}", file=sys.stderr)
    return 2


def _replay(settings: Settings, records: list[DlqRecord], args: argparse.Namespace) -> int:
    if not records:
        print("nothing to replay", file=sys.stderr)
        return 0
    if len(records) > CONFIRM_ABOVE and not args.yes and not args.dry_run:
        if not sys.stdin.isatty():
            print(f"onestop-bridge dlq: refusing to replay {len(records)} records without "
                  "confirmation; run in a terminal or pass --yes", file=sys.stderr)
            return 2
        answer = input(f"Replay {len(records)} records to their source topic? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("cancelled", file=sys.stderr)
            return 2
    audit = _Audit(settings, args.audit_log, dry_run=args.dry_run)
    producer = None
    if not args.dry_run:
        from confluent_kafka import Producer

        producer = Producer(producer_config(settings))  # the service's own: idempotent, acks=all
    try:
        result = replay(records, producer, settings.source.topic, dry_run=args.dry_run,
                        audit=audit.write, progress=Progress(len(records)))
    finally:
        audit.close()
    return 1 if result.failed else 0


class _Audit:
    """Audit lines: stdout, an optional file, and the ledger's replay_audit table."""

    def __init__(self, settings: Settings, path: str | None, *, dry_run: bool) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._ledger = None
        if not dry_run:
            try:
                from bridge.ledger import Ledger

                self._ledger = Ledger.open(settings.ledger.url)
            except Exception as exc:  # the file/stdout trail still exists
                print(f"onestop-bridge dlq: ledger unavailable for the audit: {exc}",
                      file=sys.stderr)

    def write(self, doc: dict[str, Any]) -> None:
        line = json_line(doc)
        print(line, flush=True)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        if self._ledger is not None:
            self._ledger.record_replay(doc, replayed_at=datetime.now(UTC))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._ledger is not None:
            self._ledger.close()
