"""The one settings object: a TOML file (``--config``) overridden by ``ONESTOP_<SECTION>__<KEY>``.

Secrets are ``SecretStr`` so that they never appear in reprs, logs or metric labels.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from bridge.errors import ConfigError

CANONICAL_COLUMNS = (
    "id", "code", "procedure_code", "procedure_name", "agency_name", "applicant_name",
    "applicant_phone", "status", "received_at", "due_at", "finished_at", "fee_amount",
    "note", "updated_at",
)

# How to read a schemaless value of a column: epoch units, days, or base64 decimal with scale.
COLUMN_TYPE_PATTERN = r"^(timestamp_ms|timestamp_us|timestamp_ns|date_days|decimal_base64:\d+)$"
ColumnType = Annotated[str, Field(pattern=COLUMN_TYPE_PATTERN)]


def _plain_secret(value: SecretStr) -> SecretStr:
    """A secret goes into HTTP headers and connection strings: a space at either end or a
    control character (a line ending saved with it) is refused here, or the HTTP library's
    refusal would quote the secret in errors, /readyz and dead letters."""
    raw = value.get_secret_value()
    if raw != raw.strip() or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValueError("has a space at either end or a control character (a line ending copied "
                         "with it?); the value is not shown")
    return value


def _url_userinfo(value: str) -> str:
    """In a database URL, '@', '/', '?' or '#' inside the user or password must be
    percent-encoded: libpq would take the rest of the password for the host and print it
    in every connection error."""
    _, sep, rest = value.partition("://")
    # rest[0] == "/": no host part (a SQLite file, a Unix socket), nothing to mistake.
    if sep and "@" in rest and not rest.startswith("/") and re.search(r"[@/?#]", rest[:rest.rfind("@")]):
        raise ValueError("the user or password holds '@', '/', '?' or '#' (or the URL has another "
                         "'@'): percent-encode it (%40, %2F, %3F, %23); the value is not shown")
    return value


def _secret_dsn(value: SecretStr) -> SecretStr:
    _url_userinfo(value.get_secret_value())
    return _plain_secret(value)


def _blank_is_unset(value: Any) -> Any:
    """`ONESTOP_SOURCE__DSN=` (set, but to nothing) is a forgotten value, not libpq's
    all-defaults conninfo: it is reported as not set instead of retried for ever."""
    return None if isinstance(value, str) and not value.strip() else value


Secret = Annotated[SecretStr, AfterValidator(_plain_secret)]
SecretDsn = Annotated[SecretStr, AfterValidator(_secret_dsn)]
OptionalDsn = Annotated[SecretDsn | None, BeforeValidator(_blank_is_unset)]
DatabaseUrl = Annotated[str, AfterValidator(_url_userinfo)]

_SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}")
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _list_from_env(value: Any) -> Any:
    """Accept JSON lists and plain comma-separated text (``public.dossiers,public.history``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Section(BaseModel):
    """A settings section: an unknown key is a typo to report, not to ignore."""

    model_config = {"extra": "forbid"}


class ColumnMap(Section):
    """Canonical dossier field → column name in the vendor's one-stop database."""
    id: str = "id"
    code: str = "code"
    procedure_code: str = "procedure_code"
    procedure_name: str = "procedure_name"
    agency_name: str = "agency_name"
    applicant_name: str = "applicant_name"
    applicant_phone: str = "applicant_phone"
    status: str = "status"
    received_at: str = "received_at"
    due_at: str = "due_at"
    finished_at: str = "finished_at"
    fee_amount: str = "fee_amount"
    note: str = "note"
    updated_at: str = "updated_at"


class SourceSettings(Section):
    dsn: OptionalDsn = None
    tables: Annotated[list[str], NoDecode] = ["public.dossiers"]
    slot: str = "onestop_bridge"
    publication: str = "onestop_bridge"
    topic_prefix: str = "onestop"
    topic: str = "onestop.public.dossiers"
    schemas_enable: bool = False
    snapshot_mode: Literal["initial", "no_data", "always"] = "initial"
    heartbeat_interval_s: float = 10.0
    heartbeat_table: str | None = None
    # Incremental snapshots on a signal (connectors/incremental.py): Debezium's signal table
    # (`signal.data.collection`) and chunk size (`incremental.snapshot.chunk.size`).
    signal_table: str | None = None
    incremental_chunk_size: Annotated[int, Field(gt=0, le=100_000)] = 1024
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0
    # Capture connector (connectors/): how long a walsender that stopped answering may hold
    # the slot before it is terminated; the polling connector's overlap window and state file.
    slot_takeover_after_s: float = 60.0
    poll_overlap_s: Annotated[float, Field(ge=0)] = 300.0
    state_path: str = "onestop-capture-state.sqlite"
    # Polling a status-history view keyed by dossier id (docs/connectors.md): the column
    # unique per row (the history id), which pages and the dedupe memory go by.
    poll_row_id: str | None = None
    columns: ColumnMap = ColumnMap()
    # National status code → the column holding the reason for that status, where a vendor
    # keeps them apart (LyDoTuChoi, LyDoBoSung); other statuses read `columns.note`.
    note_columns: dict[int, str] = {}
    status_map: dict[str, int] = {}
    # How to read schemaless integer/strings per canonical column (no guessing of units).
    column_types: dict[str, ColumnType] = {}
    timezone: str = "Asia/Ho_Chi_Minh"

    _split_tables = field_validator("tables", mode="before")(_list_from_env)

    @field_validator("tables")
    @classmethod
    def _some_tables(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one table to capture, e.g. public.dossiers")
        return value

    @field_validator("slot")
    @classmethod
    def _slot_name(cls, value: str) -> str:
        # PostgreSQL's rule: the server refuses any other name, only once the slot is created.
        if not _SLOT_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: a replication slot name is 1-63 lower-case letters, "
                             "digits and underscores")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        # Kafka's legal topic characters, as Debezium's topic.prefix; room for ".schema.table".
        if not _TOPIC_CHARS.fullmatch(value):
            raise ValueError(f"{value!r}: a topic prefix is 1-200 of the characters a-z A-Z 0-9 . _ -")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # Dates in citizens' messages are written in it: an unknown name must stop start-up
        # with its fix, not as a ZoneInfoNotFoundError from deep inside the first event.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name, e.g. Asia/Ho_Chi_Minh") from None
        return value

    @field_validator("note_columns")
    @classmethod
    def _note_codes_in_range(cls, value: dict[int, str]) -> dict[int, str]:
        bad = {k: v for k, v in value.items() if not 1 <= k <= 10 or not v.strip()}
        if bad:
            raise ValueError(f"note_columns maps national status codes 1..10 to column names, "
                             f"got {bad}")
        return value

    @field_validator("status_map")
    @classmethod
    def _codes_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if not 1 <= v <= 10}
        if bad:
            raise ValueError(f"status_map values must be national codes 1..10, got {bad}")
        # Values are matched without regard to case (an environment override's key arrives
        # lower-cased): two that differ only by case cannot mean two codes.
        folded: dict[str, int] = {}
        for key, code in value.items():
            if folded.setdefault(key.casefold(), code) != code:
                raise ValueError(f"status_map maps {key!r} and another spelling of it to "
                                 "different codes; values are matched without regard to case")
        return value


# Key prefixes librdkafka documents as one client kind's only (scope C or P in its
# CONFIGURATION.md); keys for both kinds (security, sasl, socket, retry.backoff) pass.
_CONSUMER_ONLY = ("group.", "session.timeout", "heartbeat.", "max.poll", "auto.offset",
                  "auto.commit", "enable.auto", "partition.assignment", "fetch.", "queued.",
                  "isolation.", "enable.partition.eof", "check.crcs", "consume.")
_PRODUCER_ONLY = ("acks", "request.required.acks", "enable.idempotence", "enable.gapless",
                  "linger.ms", "queue.buffering.", "batch.", "compression.", "partitioner",
                  "message.timeout.ms", "delivery.timeout.ms", "request.timeout.ms", "retries",
                  "message.send.max.retries", "transactional.id", "transaction.timeout.ms",
                  "sticky.partitioning", "delivery.report.only.error")


class KafkaSettings(Section):
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "onestop-bridge"
    client_id: str = "onestop-bridge"
    retry_topic_suffix: str = ".retry"
    dlq_topic_suffix: str = ".dlq"
    # Passed to librdkafka (security.protocol, sasl.*, session.timeout.ms …), each key only
    # to the kind of client it applies to (`extra_for`).
    extra: dict[str, str | int | float | bool] = {}

    def extra_for(self, client: Literal["consumer", "producer"]) -> dict[str, Any]:
        """The `extra` keys a consumer, or a producer (and admin client), understands.

        librdkafka logs a CONFWARN line at every start for a key of the other kind; one
        `extra` serves the bridge's consumer, its producers and the connector's.
        """
        foreign = _PRODUCER_ONLY if client == "consumer" else _CONSUMER_ONLY
        return {k: v for k, v in self.extra.items() if not k.startswith(foreign)}


class LedgerSettings(Section):
    url: DatabaseUrl = "sqlite:///onestop-ledger.db"
    # Event ids are remembered this long to drop redeliveries; notifications stay.
    events_retention_days: float = 30.0
    # Sent notices older than this lose their text, template data and phone (0: never).
    # The row stays: it is what keeps a redelivered old event from notifying twice.
    redact_sent_after_days: Annotated[float, Field(ge=0)] = 0.0
    # Dossiers closed (not accepted, withdrawn, stopped, result delivered) and unchanged
    # longer than this lose the applicant's name, phone and note in their state (0: never).
    redact_closed_after_days: Annotated[float, Field(ge=0)] = 0.0


class HttpSettings(Section):
    host: str = "0.0.0.0"
    port: int = 8080


class ZaloSettings(Section):
    app_id: str = ""
    app_secret: Secret = SecretStr("")
    oa_secret_key: Secret = SecretStr("")
    refresh_token: Secret = SecretStr("")
    oa_base_url: str = "https://openapi.zalo.me"
    zns_base_url: str = "https://business.openapi.zalo.me"
    oauth_base_url: str = "https://oauth.zaloapp.com"
    oa_rate_per_minute: int = 4000
    # ZNS template id per notification kind, as approved by Zalo for this OA. Kinds are
    # upper case; an environment override's key arrives lower-cased.
    zns_templates: Annotated[dict[str, str], AfterValidator(
        lambda value: {k.upper(): v for k, v in value.items()})] = {}
    refresh_ahead_s: float = 5 * 3600.0
    timeout_s: float = 10.0


class SmsSettings(Section):
    base_url: str = "http://localhost:8099"
    api_key: Secret = SecretStr("")
    brandname: str = "MOTCUA"
    rate_per_second: float = 20.0
    enabled: bool = True


class PricesSettings(Section):
    """VND per message; savings are counted against `sms`."""

    zalo_oa: int = 0
    zns: int = 150
    sms: int = 350


class DispatchSettings(Section):
    # Each worker has one request in flight, so at Zalo's typical 150–250 ms per call 16 of
    # them reach the OA's default 4,000/min; 8 could not (measured: also ~5 % more
    # notices/s on the 2-CPU bench, where the sandbox answers in ~1 ms).
    workers: int = 16
    max_in_flight: int = 500
    attempts: int = 3
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    retry_delays_s: list[float] = [30.0, 300.0, 1800.0]
    # A channel's daily quota used up (ZNS -144): wait for the reset (the default: cheaper,
    # but the notice waits until midnight, and ZNS's night ban then holds it to 06:00), or
    # go on to the next channel now (SMS at its price).
    quota_fallback: bool = False
    night_start: str = "22:00"
    night_end: str = "06:00"
    shutdown_deadline_s: float = 20.0


class Centre(Section):
    name: str
    hotline: str
    hours: str = "Thứ Hai – Thứ Sáu, 7:00–11:30 và 13:30–17:00"


class OASettings(Section):
    """The citizen-facing Official Account: menus, support, lookup."""

    portal_url: str = "https://dichvucong.gov.vn"
    province_portal_url: str = "https://dichvucong.longan.gov.vn"
    oa_id: str = "0000000000000000000"
    centres: list[Centre] = [Centre(name="Trung tâm Phục vụ hành chính công tỉnh", hotline="02723550055")]
    lookup_max_attempts: int = 5
    # Wrong second-factor answers count within this window; a locked user waits it out.
    lookup_lock_s: float = 3600.0
    lookup_dsn: OptionalDsn = None
    procedures_file: str | None = None
    # Picture shown on the "share your phone number" card (request_user_info); optional.
    share_info_image_url: str = ""
    # A shared number is linked once the follower types back the code sent to it by ZNS
    # (template `[zalo.zns_templates] LINK_CODE`): the number comes from a form.
    verify_shared_phone: bool = True
    # Threads that process webhook events after the 200 (per-user order is kept).
    webhook_workers: int = 4


class TemplatesSettings(Section):
    # Wording set by legal basis: "tt01-2018" (TT 01/2018/TT-VPCP) or "tt03-2025".
    version: str = "tt01-2018"
    # Link in RECEIVED notices that opens the OA chat; {code} is the dossier code.
    lookup_url: str = "https://zalo.me/{oa_id}?tra-cuu={code}"


class LogSettings(Section):
    level: str = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONESTOP_", env_nested_delimiter="__", extra="forbid")

    source: SourceSettings = SourceSettings()
    kafka: KafkaSettings = KafkaSettings()
    ledger: LedgerSettings = LedgerSettings()
    http: HttpSettings = HttpSettings()
    zalo: ZaloSettings = ZaloSettings()
    sms: SmsSettings = SmsSettings()
    prices: PricesSettings = PricesSettings()
    dispatch: DispatchSettings = DispatchSettings()
    oa: OASettings = OASettings()
    templates: TemplatesSettings = TemplatesSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which arrives as init kwargs.
        return env_settings, init_settings, file_secret_settings


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate.

    Raises ConfigError with a readable message for a missing file, bad TOML or
    an invalid value, so the CLI can print it and exit 2.
    """
    data: dict[str, Any] = {}
    if config is not None:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    misspelt = [name for name in os.environ if _misspelt(name)]
    if misspelt:
        # pydantic-settings ignores them: a mistyped ledger URL would quietly mean SQLite.
        raise ConfigError(f"invalid configuration: not a setting: {', '.join(sorted(misspelt))} "
                          "(ONESTOP_<SECTION>__<KEY>, two underscores; docs/configuration.md)")
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from None
    except Exception as exc:  # pydantic-settings' SettingsError: which variable, not its value
        raise ConfigError(f"invalid configuration: {exc}{_unreadable_json()}") from None


def _unreadable_json() -> str:
    """pydantic-settings names the section of a variable whose JSON it cannot read, not the
    variable: name those that look like JSON and are not (never their values: a Kafka extra
    may hold a SASL password)."""
    names = []
    for name, value in os.environ.items():
        if name.upper().startswith("ONESTOP_") and value.lstrip()[:1] in ("{", "["):
            try:
                json.loads(value)
            except ValueError:
                names.append(name)
    return f" ({', '.join(sorted(names))}: not valid JSON)" if names else ""


def _misspelt(name: str) -> bool:
    """An ONESTOP_ variable meant as a setting that names none: an unknown section or key
    (ONESTOP_ZALLO__APP_SECRET), or one underscore for two (ONESTOP_LEDGER_URL). Others,
    such as ONESTOP_PURE_PYTHON (read at install time), are not settings."""
    upper = name.upper()
    if not upper.startswith("ONESTOP_"):
        return False
    section, sep, rest = upper[len("ONESTOP_"):].partition("__")
    fields = Settings.model_fields
    if not sep:
        return any(section.startswith(known.upper() + "_") for known in fields)
    model = fields.get(section.lower())
    if model is None:
        return True
    keys = getattr(model.annotation, "model_fields", {})  # a Section's fields
    return rest.partition("__")[0].lower() not in keys


def describe(exc: ValidationError) -> str:
    """Each error as where to fix it and what is wrong, never the value given: a misspelt
    variable name may hold a password (``ONESTOP_SOURCE__DNS=...password=...``)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        path = [str(part) for part in error["loc"]]
        what = ("no such setting (misspelt?)" if error["type"] == "extra_forbidden"
                else error["msg"])
        problems.append(f"{'.'.join(path)} (ONESTOP_{'__'.join(path).upper()}): {what}")
    return "; ".join(problems)
