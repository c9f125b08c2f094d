"""``onestop-bridge broadcast --topic khan-cap|tin-tuc --text … [--dry-run] [--config FILE]
[--sandbox URL] [--rate-per-minute N]``: the pilot's "Tuyên truyền" channel.

Sends the text as an OA message to every follower who opted in by chat ("đăng ký tin
tức" / "đăng ký khẩn cấp"), through the dispatcher (same token store, same kind of
limiter; by default at half the OA app rate so a running bridge keeps the other half).
News never at night: between `dispatch.night_start` and `dispatch.night_end` (22:00–06:00,
Asia/Ho_Chi_Minh) a `tin-tuc` broadcast refuses to start (exit 3) and stops before the
next send if the night begins meanwhile. Emergency alerts (`khan-cap`: a storm, a flood
tide) go at any hour, as Zalo accepts CS messages 24/24 (zalo-api.md §10). A broadcast is
identified by its topic and text: running the same command again reaches only the
followers it has not reached yet.

Progress on stderr; the summary on stdout. Exit 0 all sent, 1 some failed, 2 bad usage
or configuration, 3 night (nothing or not everything sent; run again after 06:00).
Zalo accepts CS messages only to followers who interacted in the last 7 days (-230);
those are reported as failures.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from datetime import datetime, time, timezone
from typing import TextIO

from bridge.citizen import messages
from bridge.citizen.replies import Replier
from bridge.citizen.store import TOPICS, CitizenStore
from bridge.citizen.wording import TOPIC_COMMAND
from bridge.dispatch import build_dispatcher, sandbox_settings
from bridge.dispatch.classify import LOCAL_TZ, parse_hhmm
from bridge.errors import BridgeError, ConfigError
from bridge.ledger import Ledger, LedgerTokenStore
from bridge.logs import setup_logging
from bridge.settings import Settings, load_settings

HEADER = {"khan-cap": "THÔNG BÁO KHẨN CẤP", "tin-tuc": "TIN TỨC"}
EXIT_NIGHT = 3


def now() -> datetime:  # tests replace this
    return datetime.now(timezone.utc)


def compose(topic: str, body: str) -> str:
    footer = f"(Để ngừng nhận, Ông/Bà gửi \"hủy đăng ký {TOPIC_COMMAND[topic]}\".)"
    return f"{HEADER[topic]}\n{body.strip()}\n{footer}"


def is_night(moment: datetime, start: time, end: time) -> bool:
    local = moment.astimezone(LOCAL_TZ).time()
    return local >= start or local < end if start > end else start <= local < end


def broadcast_id(topic: str, body: str) -> str:
    return hashlib.sha256(f"{topic}\n{body.strip()}".encode()).hexdigest()[:24]


class Progress:
    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_decile = -1

    def update(self, done: int, counts: Counter[str]) -> None:
        width = 30
        filled = int(width * done / self.total)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                f"sent {counts['sent']} failed {counts['failed']}")
        decile = 10 * done // self.total
        if self.tty:
            print("\r" + line, end="" if done < self.total else "\n", file=self.stream, flush=True)
        elif decile != self._last_decile or done == self.total:
            self._last_decile = decile
            print(line, file=self.stream, flush=True)


def _night_message(settings: Settings) -> str:
    d = settings.dispatch
    return (f"broadcast refused: news is not sent at night ({d.night_start}–{d.night_end} "
            f"Asia/Ho_Chi_Minh; emergency alerts are); run the same command again after "
            f"{d.night_end} — followers already reached are skipped")


def _held_at_night(settings: Settings, topic: str) -> bool:
    """News waits for the morning; an emergency does not."""
    start, end = parse_hhmm(settings.dispatch.night_start), parse_hhmm(settings.dispatch.night_end)
    return topic != "khan-cap" and is_night(now(), start, end)


def run(settings: Settings, topic: str, body: str, *, dry_run: bool, rate_per_minute: int | None,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    text = compose(topic, body)
    if len(text) > messages.TEXT_MAX:
        print(f"broadcast refused: the message is {len(text)} characters with its header and "
              f"footer; Zalo allows {messages.TEXT_MAX}", file=err)
        return 2
    ledger = Ledger.open(settings.ledger.url)
    try:
        store = CitizenStore(ledger.engine)
        bid = broadcast_id(topic, body)
        audience = store.subscribers(topic)
        already = store.broadcast_done(bid)
        todo = [u for u in audience if u not in already]
        if dry_run:
            print(f"dry run: broadcast {bid} to topic {topic}: {len(audience)} subscribers, "
                  f"{len(already)} already reached, {len(todo)} would be sent; nothing sent",
                  file=out)
            print("--- message ---\n" + text, file=out)
            return 0
        if _held_at_night(settings, topic):
            print(_night_message(settings), file=err)
            return EXIT_NIGHT
        return _send(settings, ledger, store, bid, topic, text, todo, len(already),
                     rate_per_minute, out, err)
    finally:
        ledger.close()


def _send(settings: Settings, ledger: Ledger, store: CitizenStore, bid: str, topic: str,
          text: str, todo: list[str], skipped: int, rate_per_minute: int | None, out: TextIO,
          err: TextIO) -> int:
    rate = rate_per_minute or max(1, settings.zalo.oa_rate_per_minute // 2)
    tuned = settings.model_copy(update={"zalo": settings.zalo.model_copy(
        update={"oa_rate_per_minute": rate})})
    dispatcher = build_dispatcher(tuned, token_store=LedgerTokenStore(ledger.engine),
                                  max_rate_wait_s=120.0)
    replier = Replier(dispatcher, store, max_wait_s=120.0)
    store.open_broadcast(bid, topic, text)
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    progress = Progress(len(todo), err)
    stopped_for_night = False
    try:
        for done, user_id in enumerate(todo, start=1):
            if _held_at_night(settings, topic):
                stopped_for_night = True
                break
            try:
                message_id = replier.send(user_id, messages.text(text), f"broadcast:{topic}")
            except BridgeError as exc:
                code = str(exc.code) if exc.code is not None else exc.error_class
                store.record_broadcast_send(bid, user_id, f"failed:{code}"[:20], None)
                counts["failed"] += 1
                errors[code] += 1
            else:
                store.record_broadcast_send(bid, user_id, "sent", message_id)
                counts["sent"] += 1
            progress.update(done, counts)
    finally:
        dispatcher.close()
    left = len(todo) - counts["sent"] - counts["failed"]
    detail = ", ".join(f"{code}: {n}" for code, n in sorted(errors.items())) or "none"
    print(f"broadcast {bid} to topic {topic}: {len(todo) + skipped} subscribers; sent "
          f"{counts['sent']}, already reached before {skipped}, failed {counts['failed']} "
          f"(errors: {detail}), not sent {left}", file=out)
    if stopped_for_night:
        print(_night_message(settings), file=err)
        return EXIT_NIGHT
    return 1 if counts["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop-bridge broadcast",
                                     description="Send news or an emergency notice to opted-in "
                                                 "followers of the OA.")
    parser.add_argument("--topic", required=True, choices=TOPICS)
    parser.add_argument("--text", required=True, help="the message (Vietnamese, ≤ ~1,900 chars)")
    parser.add_argument("--dry-run", action="store_true", help="count and preview, send nothing")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--sandbox", metavar="URL", help="send to a local Zalo sandbox")
    parser.add_argument("--rate-per-minute", type=int,
                        help="OA sends per minute (default: half of zalo.oa_rate_per_minute)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not args.text.strip():
        print("broadcast refused: --text is empty", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
        if args.sandbox:
            settings = sandbox_settings(settings, args.sandbox)
        setup_logging(settings.log, secrets=settings)  # the dispatcher's lines, redacted as run's
        return run(settings, args.topic, args.text, dry_run=args.dry_run,
                   rate_per_minute=args.rate_per_minute)
    except ConfigError as exc:
        print(f"onestop-bridge broadcast: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
