"""One SQLite file (apsw, WAL) behind the batching writer: connections, disk errors, reader threads."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw

from bmo.store.batching import MAX_PENDING_WRITES, BatchingStore
from bmo.store.errors import StoreError, StoreFull

DB_FILENAME = "bmo.sqlite3"
# What the disk under the data dir, not a job, got wrong: the store is degraded until a commit succeeds.
_DISK_ERRORS = (apsw.FullError, apsw.ReadOnlyError, apsw.IOError, apsw.CantOpenError)


def store_error(exc: BaseException, doing: str = "write") -> StoreError:
    """The :class:`StoreError` that says what ``exc`` (an apsw error or a StoreError) means."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, apsw.FullError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return StoreFull(f"database {doing} failed: the disk holding the data dir is full ({exc})")
    if isinstance(exc, apsw.ReadOnlyError):
        return StoreError(f"database {doing} failed: the data dir is read-only ({exc})")
    return StoreError(f"database {doing} failed: {exc}")


def _connect(path: Path) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.setbusytimeout(5000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteDatabase(BatchingStore):
    """Async front of one SQLite database; reads run on a small pool with one connection per thread."""

    dialect = "sqlite"
    engine_error = apsw.Error
    begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, path: str | Path, *, max_pending: int = MAX_PENDING_WRITES):
        super().__init__(max_pending=max_pending)
        self.path = Path(path)
        self._local = threading.local()
        self._reader_conns: list[apsw.Connection] = []
        self._reader_lock = threading.Lock()

    def describe(self) -> str:
        return str(self.path)

    def store_error(self, exc: BaseException, doing: str = "write") -> StoreError:
        return store_error(exc, doing)

    def is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, _DISK_ERRORS)

    async def _prepare(self) -> None:
        # Sessions and ledgers are private: a new data directory is readable by its owner only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _connect_writer(self) -> apsw.Connection:
        return _connect(self.path)

    def _finish_writer(self, conn: apsw.Connection | None) -> None:
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except apsw.Error:  # a full disk: the WAL stays, SQLite replays it at the next open
            pass
        conn.close()

    def _read(self, job: Callable[[apsw.Connection], Any]) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return job(conn)

    def _close_readers(self) -> None:
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
