"""`onestop-bridge capture [--config FILE] [--metrics-port PORT] [--mode pgoutput|polling]`.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 2 for a configuration problem the
operator must fix (the message says what to run), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from bridge import metrics
from bridge.errors import ConfigError
from bridge.logs import setup_logging
from bridge.settings import Settings, load_settings

log = logging.getLogger("onestop.capture")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="onestop-bridge capture",
        description="Change capture from the one-stop database into Kafka, in Debezium's format.")
    parser.add_argument("--config", help="TOML settings file (ONESTOP_* variables override it)")
    parser.add_argument("--metrics-port", type=int, default=8081,
                        help="serve Prometheus /metrics on this port (0 = off; default 8081)")
    parser.add_argument("--metrics-host", default="0.0.0.0",
                        help="the address /metrics listens on (default all; 127.0.0.1 keeps it "
                             "to this host)")
    parser.add_argument("--mode", choices=("pgoutput", "polling"), default="pgoutput",
                        help="pgoutput: PostgreSQL logical replication (default); "
                             "polling: any SQLAlchemy database, by updated_at")
    return parser.parse_args(argv)


def build_runner(settings: Settings, mode: str, stop: threading.Event) -> Any:
    if mode == "polling":
        from connectors.polling import PollingCapture

        return PollingCapture(settings, stop)
    from connectors.capture import PgCapture

    return PgCapture(settings, stop)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"onestop-bridge capture: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log, secrets=settings)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %s: stopping", signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    try:
        runner = build_runner(settings, args.mode, stop)
        if args.metrics_port:
            from prometheus_client import start_http_server

            try:
                start_http_server(args.metrics_port, args.metrics_host, registry=metrics.capture_registry())
            except OSError as exc:  # in use: another connector on this host, most likely
                raise ConfigError(f"cannot serve /metrics on {args.metrics_host} port {args.metrics_port} "
                                  f"(--metrics-host, --metrics-port): {exc.strerror}") from None
        log.info("capture starting (mode %s, tables %s, topic prefix %s)", args.mode,
                 ",".join(settings.source.tables), settings.source.topic_prefix)
        runner.run()
    except ConfigError as exc:
        log.error("configuration problem: %s", exc)
        return 2
    except Exception:
        log.exception("capture failed")
        return 1
    log.info("capture stopped")
    return 0
