"""Helpers for the connector tests: a per-test database, a capture running in a thread, and an
independent Kafka reader (kafka-python, not the library the connector produces with)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from kafka import KafkaConsumer, TopicPartition

from bridge import metrics
from bridge.settings import Settings, load_settings
from waiting import wait_for

REFERENCE_SQL = (Path(__file__).resolve().parents[2] / "schemas" / "reference.sql").read_text()


@dataclass
class CaptureDb:
    """A throwaway database with the reference schema, and names unique to one test."""

    pg: Any
    name: str
    bootstrap: str

    @property
    def dsn(self) -> str:
        return self.pg.url(self.name)

    @property
    def topic(self) -> str:
        return f"{self.name}.public.dossiers"

    def connect(self) -> psycopg2.extensions.connection:
        conn = self.pg.connect(self.name)
        conn.autocommit = True
        return conn

    def execute(self, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def settings(self, kafka_extra: dict[str, Any] | None = None, **source: Any) -> Settings:
        values = {"dsn": self.dsn, "slot": self.name, "publication": self.name,
                  "topic_prefix": self.name, "heartbeat_interval_s": 1.0,
                  "slot_takeover_after_s": 3.0, **source}
        return load_settings(None, source=values,
                             kafka={"bootstrap_servers": self.bootstrap,
                                    "extra": {"message.timeout.ms": 30000, **(kafka_extra or {})}})

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a connector subprocess configured only by ONESTOP_* variables."""
        return {"ONESTOP_SOURCE__DSN": self.dsn, "ONESTOP_SOURCE__SLOT": self.name,
                "ONESTOP_SOURCE__PUBLICATION": self.name, "ONESTOP_SOURCE__TOPIC_PREFIX": self.name,
                "ONESTOP_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap, "ONESTOP_LOG__FORMAT": "text",
                **extra}

    @contextmanager
    def least_privilege_role(self) -> Iterator[str]:
        """A role with only LOGIN, REPLICATION and SELECT on the table (docs/connectors.md);
        its DSN. Dropped afterwards, with its sessions."""
        role = f"cap_{self.name}"[:63]
        self.execute(f'CREATE ROLE "{role}" LOGIN REPLICATION; GRANT SELECT ON dossiers TO "{role}"')
        try:
            yield self.dsn.replace("postgresql://postgres@", f"postgresql://{role}@")
        finally:
            self.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            self.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')

    def add_notices(self, rows: int, publish: bool = True) -> None:
        """A second table, `notices (id, version)` with `rows` rows, added to the publication."""
        self.execute("CREATE TABLE notices (id int PRIMARY KEY, version int NOT NULL); "
                     f"INSERT INTO notices SELECT g, 0 FROM generate_series(1, {rows}) g"
                     + (f'; ALTER PUBLICATION "{self.name}" ADD TABLE notices' if publish else ""))

    def confirmed_flush(self) -> int | None:
        rows = self.execute("SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint "
                            "FROM pg_replication_slots WHERE slot_name = %s", (self.name,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None


def insert_dossier(conn: Any, code: str, status: int = 1, **values: Any) -> int:
    columns = {"code": code, "procedure_code": "1.001234", "procedure_name": "Cấp giấy phép xây dựng",
               "agency_name": "UBND huyện Bến Lức", "applicant_name": "Nguyễn Văn An",
               "applicant_phone": "0909123456", "status": status, **values}
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO dossiers ({names}) VALUES ({marks}) RETURNING id",
                    list(columns.values()))
        return int(cur.fetchone()[0])


class CaptureThread:
    """PgCapture (or PollingCapture) running in a background thread until stop()."""

    def __init__(self, runner_factory: Callable[[threading.Event], Any]) -> None:
        self.stop_event = threading.Event()
        self.runner = runner_factory(self.stop_event)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()/alive()
            self.error = exc

    def alive(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"capture died: {self.error!r}") from self.error
        return self.thread.is_alive()

    def stop(self, timeout: float = 60) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "capture did not stop"
        if self.error is not None:
            raise self.error


@dataclass
class Record:
    partition: int
    offset: int
    key: Any
    value: Any
    raw_value: bytes | None = field(repr=False, default=None)
    headers: dict[str, bytes] = field(default_factory=dict)


class TopicReader:
    """Everything on a topic, from the beginning, in arrival order per partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      fetch_max_wait_ms=100)
        self.records: list[Record] = []
        self._assigned = False

    def _assign(self) -> bool:
        if not self._assigned:
            self.consumer.topics()  # refresh metadata
            partitions = self.consumer.partitions_for_topic(self.topic)
            if not partitions:
                return False
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
            self._assigned = True
        return True

    def poll(self) -> list[Record]:
        if not self._assign():
            return []
        fresh = []
        for records in self.consumer.poll(timeout_ms=200, max_records=20000).values():
            for r in records:
                fresh.append(Record(r.partition, r.offset, json.loads(r.key) if r.key else None,
                                    json.loads(r.value) if r.value is not None else None, r.value,
                                    dict(r.headers or [])))
        self.records.extend(fresh)
        return fresh

    def wait(self, condition: Callable[[list[Record]], bool], timeout: float = 30,
             message: str = "records") -> list[Record]:
        def check() -> bool:
            self.poll()
            return condition(self.records)

        wait_for(check, timeout=timeout, interval=0.01, message=message)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def payload(record: Record) -> Any:
    value = record.value
    return value["payload"] if isinstance(value, dict) and "payload" in value else value


def key_payload(record: Record) -> Any:
    key = record.key
    return key["payload"] if isinstance(key, dict) and "payload" in key else key


def reconnects(reason: str) -> float:
    """onestop_capture_reconnects_total{reason}: sessions ended by that kind of failure."""
    return metrics.REGISTRY.get_sample_value("onestop_capture_reconnects_total", {"reason": reason}) or 0.0


_CONNECT_TYPES: dict[str, tuple[type, ...]] = {
    "int8": (int,), "int16": (int,), "int32": (int,), "int64": (int,), "float": (int, float),
    "double": (int, float), "boolean": (bool,), "string": (str,), "bytes": (str,)}


def connect_valid(document: Any, where: str = "") -> list[str]:
    """What Kafka Connect's JsonConverter would refuse in a {"schema", "payload"} record:
    a required field that is null or missing, or a value of the wrong JSON type."""
    return _check(document["schema"], document["payload"], where or "payload")


def _check(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    if value is None:
        ok = schema.get("optional", False) or "default" in schema
        return [] if ok else [f"{where}: null for a required {schema['type']}"]
    if schema["type"] == "struct":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [problem for field in schema["fields"]
                for problem in _check(field, value.get(field["field"]), f"{where}.{field['field']}")]
    expected = _CONNECT_TYPES.get(schema["type"])
    if expected and (not isinstance(value, expected) or (bool not in expected and isinstance(value, bool))):
        return [f"{where}: {value!r} is not a {schema['type']}"]
    return []
