"""A throw-away PostgreSQL server for tests: a cluster in a temp dir on a free loopback port.

Never the machine's own server: ``initdb`` makes a new cluster (as the ``postgres`` user when
run as root, since initdb refuses root), ``pg_ctl`` starts it with its socket in the same temp
dir, and each test gets a fresh store (a schema of its own, ~3 ms). Stopped and removed at
the end. ``find_postgres_bin()`` says why there is none, for a skip (or, under ``CI=true``, a failure).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bmo.testing.harness import free_port

SUPERUSER = "postgres"
TEST_DATABASE = "bmo_tests"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says what is missing."""


def find_postgres_bin() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then ``/usr/lib/postgresql/*/bin``."""
    initdb = shutil.which("initdb")
    if initdb:
        for folder in (Path(initdb).resolve().parent, Path(initdb).parent):  # pg_ctl finds postgres beside itself
            if (folder / "pg_ctl").exists():
                return folder
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin): "
        "apt-get install postgresql, or run scripts/setup as root")


class PostgresCluster:
    """One throw-away cluster: ``start()``, ``new_store_url()`` per test, ``stop()``/``start()`` mid-test, ``remove()``."""

    def __init__(self, root: Path | None = None):
        self.bin = find_postgres_bin()
        self.root = Path(root or tempfile.mkdtemp(prefix="bmo-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        self._test_db_ready = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip()[-800:]
            raise PostgresUnavailable(f"{args[0]} failed ({proc.returncode}): {said}")
        return proc

    def init(self) -> None:
        if self._as_root:
            shutil.chown(self.root, SUPERUSER)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        # No fsync: a test cluster trades durability across a machine crash for speed.
        options = (f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def new_store_url(self) -> str:
        """The URL of a fresh, empty store: a new schema in one test database (~3 ms; a new database costs ~0.5 s)."""
        import psycopg

        if not self._test_db_ready:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{TEST_DATABASE}" TEMPLATE template0')
            self._test_db_ready = True
        schema = f"t{next(self._names)}"
        with psycopg.connect(self.url(TEST_DATABASE), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        # Every connection of that URL sees only its schema: the store's tables land and are found there.
        return f"{self.url(TEST_DATABASE)}?options=-csearch_path%3D{schema}"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


@contextlib.contextmanager
def server_down(cluster: PostgresCluster) -> Iterator[None]:
    """The cluster stopped for the block (a fast shutdown cuts every connection), started again after it."""
    cluster.stop()
    try:
        yield
    finally:
        cluster.start()


def internals_of(cluster: PostgresCluster) -> list[str]:
    """What must never reach a client or a record: the server's address, port, user and database."""
    return ["127.0.0.1", f":{cluster.port}", "postgres@", TEST_DATABASE]


def serve_for_bench(databases: list[str]) -> None:
    """``python -m bmo.testing.postgres DB...``: a throw-away server in the foreground, its CPU in our process tree.

    Prints ``READY <port>`` once the databases exist; SIGTERM stops the server and removes the cluster.
    """
    import signal
    import sys
    import time

    import psycopg

    cluster = PostgresCluster()
    cluster.init()
    options = ["-k", str(cluster.root), "-p", str(cluster.port), "-c", "listen_addresses=127.0.0.1",
               "-c", "max_connections=300"]  # durable settings (fsync on): what a deployment would run
    command = [str(cluster.bin / "postgres"), "-D", str(cluster.data), *options]
    if cluster._as_root:
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(cluster.root / "server.log", "wb"))
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(cluster.url(), autocommit=True, connect_timeout=2) as conn:
                    for name in databases:
                        conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        print(f"READY {cluster.port}", flush=True)
        while not stopping and server.poll() is None:
            time.sleep(0.2)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # postgres' fast shutdown
            server.wait(30)
        shutil.rmtree(cluster.root, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    import sys

    serve_for_bench(sys.argv[1:])
