"""One SQLite file (apsw, WAL): a single writer thread that batches, reader threads, migrations."""

from __future__ import annotations

import asyncio
import errno
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from bmo.store.statements import Statement

DB_FILENAME = "bmo.sqlite3"
MAX_PENDING_WRITES = 10_000  # jobs queued for the writer beyond this are refused at once, never buffered
_STOP = object()
# What the disk under the data dir, not a job, got wrong: the store is degraded until a commit succeeds.
_DISK_ERRORS = (apsw.FullError, apsw.ReadOnlyError, apsw.IOError, apsw.CantOpenError)


class StoreError(Exception):
    """A write or read the store could not do; the caller decides what it means.

    ``status`` and ``code`` are what an HTTP route answers when the failure reaches a client.
    """

    status = 503
    code = "store_unavailable"


class StoreFull(StoreError):
    """The disk under the data dir is full (SQLITE_FULL / ENOSPC): nothing new can be written."""

    status = 507
    code = "disk_full"


def store_error(exc: BaseException, doing: str = "write") -> StoreError:
    """The :class:`StoreError` that says what ``exc`` (an apsw error or a StoreError) means."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, apsw.FullError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        return StoreFull(f"database {doing} failed: the disk holding the data dir is full ({exc})")
    if isinstance(exc, apsw.ReadOnlyError):
        return StoreError(f"database {doing} failed: the data dir is read-only ({exc})")
    return StoreError(f"database {doing} failed: {exc}")


@dataclass(frozen=True)
class Migration:
    """One version of an owner's tables; ``postgresql`` replaces ``sql`` on PostgreSQL when the dialects differ."""

    owner: str
    version: int
    sql: str
    postgresql: str | None = None

    def sql_for(self, dialect: str) -> str:
        """The text to run on ``dialect`` (``"sqlite"`` or ``"postgresql"``)."""
        return self.postgresql if dialect == "postgresql" and self.postgresql is not None else self.sql


def collect_migrations(pm) -> list[Migration]:
    migrations: list[Migration] = []

    def register(owner: str, version: int, sql: str, postgresql: str | None = None) -> None:
        migrations.append(Migration(owner, version, sql, postgresql))

    pm.hook.bmo_migrations(register=register)
    return sorted(migrations, key=lambda m: (m.owner, m.version))


def _connect(path: Path) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.setbusytimeout(5000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Database:
    """Async front of one SQLite database.

    Writes go to one thread that drains its queue into a single transaction, each job in
    its own savepoint, so a burst of ledger rows costs one commit and a failing job fails
    only its own future. Reads run on a small pool with one connection per thread.
    """

    def __init__(self, path: str | Path, *, max_pending: int = MAX_PENDING_WRITES):
        self.path = Path(path)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.max_pending = max_pending
        # Held while a job is queued and while a stopped writer fails what is left: no job slips in between.
        self._gate = threading.Lock()
        self._writer_stopped: StoreError | None = None
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bmo-db-read")
        self._local = threading.local()
        self._reader_conns: list[apsw.Connection] = []
        self._reader_lock = threading.Lock()
        self.closed = False
        # Transactions the writer committed and jobs it ran: jobs/transactions is the batching gain.
        self.transactions = 0
        self.jobs_run = 0
        self.jobs_failed = 0  # jobs whose write did not happen (their callers got the error)
        self.refused = 0  # jobs refused because the queue was full or the writer had stopped
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # Sticky from a failed write until a commit succeeds again: the store is degraded meanwhile.
        self.failing: StoreError | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def open(self, migrations: Iterable[Migration] = ()) -> None:
        # Sessions and ledgers are private: a new data directory is readable by its owner only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ready: Future = Future()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="bmo-db-writer", daemon=True
        )
        self._writer.start()
        await asyncio.wrap_future(ready)
        await self.run_write(lambda conn: _apply_migrations(conn, list(migrations)))

    async def close(self) -> None:
        """Finish every queued write, then close all connections."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._readers.shutdown, True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # -- writes: a job is ``job(conn)``, e.g. a Statement or a Batch -------------------
    def write_soon(self, job: Callable[[apsw.Connection], Any]) -> asyncio.Future:
        """Queue ``job(conn)`` from the event loop; the returned future may be awaited or not.

        The writer settles all of a batch's futures with one wake-up of the loop, so a job
        costs no thread hop of its own.
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        refusal = None
        with self._gate:
            if self._writer_stopped is not None:
                refusal = self._writer_stopped
            elif self.closed:
                refusal = StoreError("the database is closed")
            elif self._jobs.qsize() >= self.max_pending:
                refusal = StoreError(f"the database writer is {self.max_pending} jobs behind; try again shortly")
            else:
                self._jobs.put((job, (loop, fut)))
        if refusal is not None:
            self.refused += 1
            fut.set_exception(refusal)
        return fut

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for the writer (the batch it is running not included)."""
        return self._jobs.qsize()

    @property
    def writer_alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive() and self._writer_stopped is None

    async def run_write(self, job: Callable[[apsw.Connection], Any]) -> Any:
        """``await`` a job's result; an SQLite failure is a :class:`StoreError` (:class:`StoreFull` for a full disk)."""
        try:
            return await self.write_soon(job)
        except (apsw.Error, StoreError) as exc:
            raise store_error(exc) from exc

    async def write(self, sql: str, params: tuple | dict = ()) -> int:
        """One statement (``run_write(Statement(sql, params))``); returns the last inserted rowid."""
        return await self.run_write(Statement(sql, params))

    def _write_loop(self, ready: Future) -> None:
        try:
            conn = _connect(self.path)
        except Exception as exc:  # reported to open()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        stopped = StoreError("the database is closed")
        try:
            stopping = False
            while not stopping:
                batch = [self._jobs.get()]
                while True:
                    try:
                        batch.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [item for item in batch if item is not _STOP]
                if batch:
                    try:
                        self._run_batch(conn, batch)
                    except BaseException as exc:  # noqa: BLE001 - the batch in hand fails too, then the writer stops
                        self.jobs_failed += len(batch)
                        _settle([(waiter, None, StoreError(f"the database writer failed: {exc}")) for _, waiter in batch])
                        raise  # to the handler below, which stops the writer and fails what is queued
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except apsw.Error:  # a full disk: the WAL stays, SQLite replays it at the next open
                pass
        except BaseException as exc:  # noqa: BLE001 - the writer must not die silently with callers waiting
            stopped = StoreError(f"the database writer stopped after an unexpected error: {type(exc).__name__}: {exc}")
            self._note_failure(stopped)  # told to every caller from now on: no traceback on stderr
        finally:
            self._fail_pending(stopped)
            conn.close()

    def _fail_pending(self, reason: StoreError) -> None:
        """The writer is gone: every queued job and every later one fails with ``reason``."""
        with self._gate:
            self._writer_stopped = reason
            left = []
            while True:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    left.append((item[1], None, reason))
        self.jobs_failed += len(left)
        _settle(left)

    def _note_failure(self, exc: BaseException) -> None:
        """Remember a failure of the disk or the writer (a job's own constraint error is not one)."""
        if not isinstance(exc, (*_DISK_ERRORS, StoreError)):
            return
        self.last_error = str(store_error(exc))
        self.last_error_at = time.time()
        if isinstance(exc, _DISK_ERRORS):
            self.failing = store_error(exc)

    def _run_batch(self, conn: apsw.Connection, batch: list) -> None:
        """Run ``batch`` in one transaction, a savepoint per job; every job's future is settled exactly once.

        SQLite may roll the whole transaction back by itself on SQLITE_FULL or an I/O error; then
        the jobs already done are lost too, so they fail with that error and the rest of the
        batch goes on in a new transaction. A failed batch leaves the connection outside any
        transaction, ready for the next one.
        """
        settled: list[tuple[Any, Any, BaseException | None]] = []
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            self._fail_batch([(waiter, None, exc) for _, waiter in batch], exc)
            return
        for index, (job, fut) in enumerate(batch):
            try:
                conn.execute("SAVEPOINT job")
                value = job(conn)
                conn.execute("RELEASE job")
                results.append((fut, value, None))
            except BaseException as exc:  # noqa: BLE001 - the job's own failure goes to its caller
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    except apsw.Error:
                        pass
                if isinstance(exc, apsw.Error):
                    self._note_failure(exc)
                if not conn.in_transaction:  # SQLite rolled back everything: the earlier jobs are undone too
                    settled += [(f, None, err or exc) for f, _, err in results] + [(fut, None, exc)]
                    results = []
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except apsw.Error as again:
                        self._fail_batch(settled + [(w, None, again) for _, w in batch[index + 1:]], again)
                        return
                    continue
                results.append((fut, None, exc))
        try:
            conn.execute("COMMIT")
        except apsw.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except apsw.Error:
                    pass
            self._fail_batch(settled + [(fut, None, err or exc) for fut, _, err in results], exc)
            return
        self.transactions += 1
        self.jobs_run += len(results)
        self.jobs_failed += len(settled) + sum(1 for _, _, err in results if err is not None)
        if not settled and not any(isinstance(err, _DISK_ERRORS) for _, _, err in results):
            self.failing = None  # a commit with no disk error in it: the disk takes writes again
        _settle(settled + results)

    def _fail_batch(self, results: list, exc: BaseException) -> None:
        self._note_failure(exc)
        self.jobs_failed += len(results)
        _settle(results)

    # -- reads -----------------------------------------------------------------------
    def _reader(self) -> apsw.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def run_read(self, job: Callable[[apsw.Connection], Any]) -> Any:
        if self.closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: job(self._reader()))
        except apsw.Error as exc:
            raise store_error(exc, "read") from exc

    async def fetchall(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        """Rows as dicts keyed by column name."""

        def job(conn: apsw.Connection) -> list[dict]:
            cursor = conn.execute(sql, params)
            out: list[dict] = []
            names: list[str] | None = None
            for row in cursor:
                if names is None:  # apsw describes a statement only while it is running
                    names = [d[0] for d in cursor.getdescription()]
                out.append(dict(zip(names, row)))
            return out

        return await self.run_read(job)

    async def fetchone(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


def _settle(results: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Hand each job's outcome to its asyncio future, one call into each waiting loop."""
    by_loop: dict[Any, list] = {}
    for (loop, fut), value, err in results:
        by_loop.setdefault(loop, []).append((fut, value, err))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _resolve_all(items: list) -> None:
    for fut, value, err in items:
        _resolve(fut, value, err)


def _resolve(fut: Any, value: Any, err: BaseException | None) -> None:
    if fut.cancelled() or fut.done():  # the caller stopped waiting; the write still happened
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(value)


def _apply_migrations(conn: apsw.Connection, migrations: list[Migration]) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bmo_migrations ("
        " owner TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL"
        " DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), PRIMARY KEY (owner, version))"
    )
    done = {(o, v) for o, v in conn.execute("SELECT owner, version FROM bmo_migrations")}
    applied = []
    for m in migrations:
        if (m.owner, m.version) in done:
            continue
        conn.execute(m.sql_for("sqlite"))
        conn.execute("INSERT INTO bmo_migrations (owner, version) VALUES (?, ?)", (m.owner, m.version))
        applied.append(f"{m.owner}:{m.version}")
    return applied
