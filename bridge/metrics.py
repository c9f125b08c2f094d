"""Every Prometheus metric of the bridge and the connector, in one registry.

Conventions (anchors.md §5): prefix ``onestop_``, base units, counters end in
``_total``; labels are low-cardinality only — never phone numbers, dossier codes,
user ids or tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from bridge import __version__
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric

REGISTRY = CollectorRegistry(auto_describe=True)

# End-to-end buckets: an exact bucket at the 5 s SLO, room for retries and night deferral.
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400)
# GOV.UK Notify's "delivered" timer reaches hours: the handset may be off.
DELIVERED_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 30 * 3600)

build_info = Info("onestop_build", "Version of the running onestop-bridge.", registry=REGISTRY)
build_info.info({"version": __version__})

# --- consume -------------------------------------------------------------------------
events_consumed = Counter(
    "onestop_events_consumed_total", "Change events read from Kafka.", ["topic", "op"],
    registry=REGISTRY)
consumer_lag = Gauge(
    "onestop_consumer_lag", "Records between this consumer's position and the partition end "
    "(read but not yet done, e.g. retries held until due, are not in it: "
    "onestop_retry_waiting_notifications).",
    ["partition"], registry=REGISTRY)
bad_events = Counter(
    "onestop_bad_events_total", "Records that could not be decoded or mapped.", ["reason"],
    registry=REGISTRY)

# --- notify and deliver ----------------------------------------------------------------
notifications = Counter(
    "onestop_notifications_total", "Notifications by final outcome.",
    ["kind", "channel", "outcome"], registry=REGISTRY)
delivery_attempts = Counter(
    "onestop_delivery_attempts_total", "Calls to a delivery channel.", ["channel", "result"],
    registry=REGISTRY)
zalo_errors = Counter(
    "onestop_zalo_errors_total", "Zalo error codes answered (bounded set of codes).",
    ["channel", "code"], registry=REGISTRY)
dlq_records = Counter(
    "onestop_dlq_records_total", "Records written to the dead-letter topic.", ["reason"],
    registry=REGISTRY)
retry_scheduled = Counter(
    "onestop_retry_scheduled_total", "Records moved to the delayed retry topic.",
    registry=REGISTRY)
replayed = Counter(
    "onestop_replayed_total", "DLQ records replayed by an operator.", ["result"],
    registry=REGISTRY)
event_to_sent = Histogram(
    "onestop_event_to_sent_seconds",
    "From the database commit (source.ts_ms) to the provider accepting the message.",
    ["channel"], buckets=E2E_BUCKETS, registry=REGISTRY)
event_to_delivered = Histogram(
    "onestop_event_to_delivered_seconds",
    "From the database commit to the provider's delivery webhook.",
    ["channel"], buckets=DELIVERED_BUCKETS, registry=REGISTRY)
rate_limit_wait = Histogram(
    "onestop_rate_limit_wait_seconds", "Time spent waiting for a rate-limiter permit.",
    ["limiter"], buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60), registry=REGISTRY)
in_flight = Gauge(
    "onestop_in_flight_notifications", "Notifications accepted from Kafka and not yet settled.",
    registry=REGISTRY)
retry_waiting = Gauge(
    "onestop_retry_waiting_notifications",
    "Retry-topic records kept until they are due (deferred to the morning, retried later).",
    registry=REGISTRY)
token_refresh = Counter(
    "onestop_zalo_token_refresh_total", "Zalo access-token refreshes.", ["result"],
    registry=REGISTRY)
token_expiry = Gauge(
    "onestop_zalo_token_expiry_timestamp_seconds", "When the current access token expires.",
    registry=REGISTRY)
zns_quota_remaining = Gauge(
    "onestop_zns_quota_remaining", "ZNS messages left in today's quota.", registry=REGISTRY)
zns_quota_daily = Gauge(
    "onestop_zns_quota_daily", "Today's ZNS daily quota.", registry=REGISTRY)
cost_vnd = Counter(
    "onestop_cost_vnd_total", "What delivered messages cost, in VND.", ["channel"],
    registry=REGISTRY)
sms_savings_vnd = Counter(
    "onestop_sms_savings_vnd_total",
    "VND saved against sending the same notification by SMS, its parts × the SMS price "
    "(no savings when SMS fired).",
    registry=REGISTRY)

# --- citizen side ----------------------------------------------------------------------
webhook_requests = Counter(
    "onestop_webhook_requests_total", "Zalo webhook requests by result.", ["result"],
    registry=REGISTRY)
webhook_events = Counter(
    "onestop_webhook_events_total", "Webhook events processed.", ["event"], registry=REGISTRY)
lookups = Counter(
    "onestop_lookups_total", "Dossier lookups by result.", ["result"], registry=REGISTRY)
followers_linked = Gauge(
    "onestop_followers_linked", "Zalo followers linked to a phone number.", registry=REGISTRY)
link_codes = Counter(
    "onestop_link_codes_total", "Link codes typed back by followers, by outcome "
    "(proved, wrong, expired, used_up; taken: proved, but its owner had linked it).",
    ["outcome"], registry=REGISTRY)
ratings = Counter(
    "onestop_ratings_total", "Satisfaction ratings received.", ["score"], registry=REGISTRY)
feedback = Counter(
    "onestop_feedback_total", "Free-text feedback messages received.", registry=REGISTRY)

# --- loops -----------------------------------------------------------------------------
loop_heartbeat = Gauge(
    "onestop_loop_heartbeat_timestamp_seconds", "Last time a loop made progress.", ["loop"],
    registry=REGISTRY)

# --- connector (onestop-bridge capture) ------------------------------------------------
capture_events = Counter(
    "onestop_capture_events_total", "Row changes written to Kafka.", ["table", "op"],
    registry=REGISTRY)
capture_slot_lag_bytes = Gauge(
    "onestop_capture_slot_lag_bytes", "WAL bytes between the server's position and the slot's "
    "confirmed_flush_lsn.", registry=REGISTRY)
capture_last_event_age = Gauge(
    "onestop_capture_last_event_age_seconds",
    "Seconds since Kafka acknowledged the last captured change.",
    registry=REGISTRY)


class _Since:
    """Seconds since the last `mark`, computed at each scrape: the age keeps growing between
    sessions and while disconnected, when nothing in the connector would update a value."""

    def __init__(self) -> None:
        self.at = time.time()  # process start: nothing captured yet

    def mark(self) -> None:
        self.at = time.time()

    def age(self) -> float:
        return max(0.0, time.time() - self.at)


last_capture = _Since()
capture_last_event_age.set_function(last_capture.age)
capture_confirmed_lsn = Gauge(
    "onestop_capture_confirmed_lsn", "Last LSN confirmed to the server (as an integer).",
    registry=REGISTRY)
capture_connected = Gauge(
    "onestop_capture_connected",
    "1 while a session streams from the slot (after a Kafka failure, only once Kafka answers again).",
    registry=REGISTRY)
capture_kafka_unacknowledged = Gauge(
    "onestop_capture_kafka_unacknowledged_seconds",
    "How long records have waited for Kafka with none acknowledged (a resend owed after a Kafka "
    "failure counts as waiting); 0 when nothing waits.", registry=REGISTRY)
capture_reconnects = Counter(
    "onestop_capture_reconnects_total", "Capture sessions ended by an error, by cause.", ["reason"],
    registry=REGISTRY)
# Every cause from 0, so that increase() sees the first session that ends with it (the
# causes connectors.capture._reason gives; polling uses two of them).
for _reason in ("connection", "kafka", "slot_busy", "snapshot"):
    capture_reconnects.labels(reason=_reason)
capture_snapshot_rows = Counter(
    "onestop_capture_snapshot_rows_total", "Rows emitted by snapshots: the initial one, a table "
    "added later, and incremental snapshots on a signal.", registry=REGISTRY)
capture_incremental_tables = Gauge(
    "onestop_capture_incremental_snapshot_tables",
    "Tables an incremental snapshot (on a signal) has yet to finish reading; 0 when none runs.",
    registry=REGISTRY)
capture_heartbeats = Counter(
    "onestop_capture_heartbeats_total", "Heartbeats Kafka acknowledged (sent while captured tables were quiet).",
    registry=REGISTRY)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onestop-bridge")
    except PackageNotFoundError:
        return "unknown"


# Set at import so every process (run, capture) exposes its version from the first scrape.
build_info.info({"version": _version()})


class _Families:
    """A read-only view of REGISTRY: the families `keep(name)` accepts."""

    def __init__(self, keep: Callable[[str], bool]) -> None:
        self.keep = keep

    def collect(self) -> Iterator[Metric]:
        return (family for family in REGISTRY.collect() if self.keep(family.name))


def _view(keep: Callable[[str], bool]) -> CollectorRegistry:
    view = CollectorRegistry(auto_describe=False)
    view.register(_Families(keep))
    return view


def capture_registry() -> CollectorRegistry:
    """What `onestop-bridge capture` serves: its own families and the build info, not the
    bridge's, which that process never fills (a ZNS quota of 0 next to the slot's lag)."""
    return _view(lambda name: name.startswith(("onestop_capture_", "onestop_build")))


def bridge_registry() -> CollectorRegistry:
    """What `onestop-bridge run` serves: everything but the connector's families, which it
    never fills — its `onestop_capture_connected` 0 fired OnestopConnectorDown for ever."""
    return _view(lambda name: not name.startswith("onestop_capture_"))
