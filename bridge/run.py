"""`onestop-bridge run [--config FILE] [--sandbox URL]`: Kafka → citizens.

Assembles the ledger (migrated at start), the pipeline, the dispatcher (with the
ledger's token store and follower links), the consumer loop and the HTTP server, then
runs until SIGTERM/SIGINT, finishing or handing back in-flight work within
`dispatch.shutdown_deadline_s`.

Exit status: 0 after a clean stop, 2 for a configuration problem (one line on stderr),
1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

import sqlalchemy as sa
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from bridge import metrics
from bridge.consume.loop import ConsumerLoop, LoopTimers
from bridge.consume.topics import Topics
from bridge.dlq.producer import dlq_topic, retry_topic
from bridge.errors import ConfigError
from bridge.http import AppContext, HttpServer, build_app
from bridge.http.app import RouteInstaller
from bridge.http.routes import default_installers
from bridge.kafka_clients import admin_config, consumer_config, producer_config
from bridge.ledger import Ledger, LedgerFollowers, LedgerTokenStore
from bridge.logs import setup_logging
from bridge.refusals import refusal
from bridge.settings import Settings, load_settings

log = logging.getLogger("onestop.run")


class Bridge:
    """Everything `run` starts, in one place (tests build it in-process too)."""

    def __init__(self, settings: Settings, *, installers: list[RouteInstaller] | None = None) -> None:
        from bridge.dispatch import build_dispatcher
        from bridge.pipeline import Pipeline

        self.settings = settings
        self.ledger = Ledger.open(settings.ledger.url, pool_size=settings.dispatch.workers + 4)
        self.tokens = LedgerTokenStore(self.ledger.engine)
        self.followers = LedgerFollowers(self.ledger.engine)
        self.dispatcher = build_dispatcher(settings, followers=self.followers,
                                           token_store=self.tokens)
        self.pipeline = Pipeline(settings)
        self.admin = AdminClient(admin_config(settings))
        self.topics = Topics(self.admin)
        self.producer = Producer(producer_config(settings))
        self.consumer: Consumer | None = None
        self.loop: ConsumerLoop | None = None
        self.installers = default_installers() if installers is None else installers
        self.http: HttpServer | None = None

    def loops(self) -> list[str]:
        return ["consumer"] + [f"worker-{i}" for i in range(max(1, self.settings.dispatch.workers))]

    def start_http(self) -> HttpServer:
        ctx = AppContext(self.settings, ledger=self.ledger, dispatcher=self.dispatcher,
                         followers=self.followers, token_store=self.tokens, loops=self.loops(),
                         readiness={"broker": self._check_broker, "ledger": self._check_ledger,
                                    "zalo_token": self._check_token})
        self.http = HttpServer(build_app(ctx, self.installers), self.settings.http.host,
                               self.settings.http.port).start()
        return self.http

    def run(self, stop: threading.Event) -> None:
        def beat() -> None:  # waiting for the connector to create the topic is not being stuck
            for name in self.loops():
                metrics.loop_heartbeat.labels(loop=name).set(time.time())

        beat()
        source = self.settings.source.topic
        partitions = self.topics.wait_for(source, stop, beat=beat)
        if partitions is None:
            return
        retry = retry_topic(self.settings.kafka, source)
        self.topics.ensure([retry, dlq_topic(self.settings.kafka, source)], partitions, (retry,))
        self.consumer = Consumer(consumer_config(self.settings))
        ledger = self.settings.ledger
        timers = LoopTimers(events_retention_s=ledger.events_retention_days * 86400,
                            redact_sent_after_s=ledger.redact_sent_after_days * 86400,
                            redact_closed_after_s=ledger.redact_closed_after_days * 86400)
        self.loop = ConsumerLoop(self.settings, self.pipeline, self.ledger, self.dispatcher,
                                 self.consumer, self.producer, partitions=self.topics.cached,
                                 timers=timers)
        self.loop.run(stop)

    def close(self) -> None:
        if self.http is not None:
            self.http.stop()
        self.producer.flush(5)
        self.dispatcher.close()
        self.ledger.close()

    # --- readiness checks (run on the HTTP thread's executor) ------------------------------
    def _check_broker(self) -> str:
        metadata = self.topics.metadata(timeout_s=3)
        topic = self.settings.source.topic
        if topic not in metadata.topics:
            raise RuntimeError(f"broker reachable, but topic {topic} does not exist yet")
        return f"{len(metadata.brokers)} broker(s)"

    def _check_ledger(self) -> str:
        self.ledger.check_writable()
        return self.ledger.engine.dialect.name

    def _check_token(self) -> str:
        if self.dispatcher.zalo.tokens.refused():
            raise RuntimeError("Zalo refused the refresh token: every OA and ZNS send fails until "
                               "the OA is re-authorised (runbook: Zalo token re-consent)")
        self.dispatcher.zalo.tokens.access_token()  # refreshes when missing or due
        state = self.tokens.load()
        if state is None or not state.access_token or state.expires_at <= time.time():
            raise RuntimeError("no valid Zalo access token")
        return f"expires in {(state.expires_at - time.time()) / 3600:.1f} h"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="onestop-bridge run", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TOML settings file (ONESTOP_* variables override it)")
    parser.add_argument("--sandbox", metavar="URL",
                        help="point Zalo OA/ZNS/OAuth and the SMS gateway at one sandbox URL")
    return parser.parse_args(argv)


def load(argv: list[str]) -> Settings:
    args = parse_args(argv)
    settings = load_settings(args.config)
    if args.sandbox:
        from bridge.dispatch import sandbox_settings

        return sandbox_settings(settings, args.sandbox)
    return settings


def check_oa_id(settings: Settings) -> None:
    """A real OA (app id set) without its own id: every RECEIVED notice's lookup link opens
    no OA. Said loudly at start; not fatal, since notices still reach citizens."""
    if settings.zalo.app_id and not settings.oa.oa_id.strip("0 "):
        log.error("oa.oa_id (ONESTOP_OA__OA_ID) is not set: the Official Account's id, as in its "
                  "page's link zalo.me/<oa_id>. Every RECEIVED notice links to it "
                  "(templates.lookup_url) and opens no OA until it is set")


def open_bridge(settings: Settings, stop: threading.Event, *, first_wait_s: float = 1.0,
                max_wait_s: float = 30.0) -> Bridge | None:
    """The Bridge, once its ledger database answers: at boot or during its maintenance it may
    not yet, and exiting would let systemd give up after a few restarts. None if stopped
    first; a login the database refuses is a ConfigError (exit 2)."""
    wait = first_wait_s
    while True:
        try:
            return Bridge(settings)
        except sa.exc.OperationalError as exc:
            refused = refusal(exc, "ledger.url")
            if refused is not None:
                raise refused from None
            if settings.ledger.url.startswith("sqlite"):  # a file: no server to wait for
                raise ConfigError(f"ledger.url: cannot open the SQLite ledger ({exc.orig})") from None
            log.warning("ledger database unreachable; retrying in %.0fs",
                        wait, extra={"error": str(exc.orig).strip().splitlines()[0]})
        if stop.wait(wait):
            return None
        wait = min(wait * 2, max_wait_s)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"onestop-bridge run: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log, secrets=settings)
    check_oa_id(settings)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stop.set())
    try:
        opened = open_bridge(settings, stop)
    except ConfigError as exc:
        print(f"onestop-bridge run: {exc}", file=sys.stderr)
        return 2
    if opened is None:  # stopped while the ledger database was unreachable
        return 0
    bridge = opened
    try:
        bridge.start_http()
        bridge.run(stop)
    except ConfigError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        print(f"onestop-bridge run: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.exception("bridge failed")
        return 1
    finally:
        bridge.close()
    log.info("bridge stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
