"""``onestop-bridge sandbox``: run the fake Zalo (OA, ZNS, OAuth) + SMS gateway in the foreground."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from bridge.sandbox.messages import DEFAULT_MAX_MESSAGES
from bridge.sandbox.scenario import load_scenario
from bridge.sandbox.server import serve_forever


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onestop-bridge sandbox",
        description="Local stand-in for Zalo OA/ZNS/OAuth and the SMS gateway (one HTTP server).",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--scenario", metavar="FILE", help="scenario JSON (faults, followers, limits)")
    parser.add_argument("--webhook-url", metavar="URL", help="where to POST signed Zalo webhook events")
    parser.add_argument("--app-id", metavar="ID", help="Zalo app id (default sandbox-app)")
    parser.add_argument("--oa-secret-key", metavar="KEY", help="OA secret key for webhook signatures")
    parser.add_argument("--max-messages", type=int, default=DEFAULT_MAX_MESSAGES, metavar="N",
                        help=f"accepted sends kept for /sandbox/messages (default {DEFAULT_MAX_MESSAGES:,})")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"sandbox: cannot load scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"sandbox listening on {url}", flush=True)

    try:
        serve_forever(
            port=args.port, host=args.host, scenario=scenario, webhook_url=args.webhook_url,
            app_id=args.app_id, oa_secret_key=args.oa_secret_key, max_messages=args.max_messages, on_ready=ready,
        )
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
