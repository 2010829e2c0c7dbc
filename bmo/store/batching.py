"""The store's front, whichever engine is behind it: one writer thread that batches, reads on a pool.

A backend (``sqlite/``, ``postgres/``) says how to connect, what its engine's errors are and
which of them mean the store itself is failing; the queue, the transaction with a savepoint
per job and the settling of futures are written once, here.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bmo.store.errors import StoreError
from bmo.store.migrations import Migration, apply_migrations
from bmo.store.statements import Statement

MAX_PENDING_WRITES = 10_000  # jobs queued for the writer beyond this are refused at once, never buffered
_STOP = object()


class BatchingStore:
    """Async front of one database: writes batched by one thread, reads on a small pool.

    Writes go to one thread that drains its queue into a single transaction, each job in
    its own savepoint, so a burst of ledger rows costs one commit and a failing job fails
    only its own future.
    """

    dialect = ""  # "sqlite" | "postgresql": which text of a Migration runs
    engine_error: type[BaseException] | tuple = ()  # the engine's own error classes
    begin_sql = "BEGIN"
    # A batch of one job needs no savepoint (its transaction is its savepoint); SQLite keeps its one, as ever.
    savepoint_for_one = True

    def __init__(self, *, max_pending: int = MAX_PENDING_WRITES, readers: int = 2):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.max_pending = max_pending
        # Held while a job is queued and while a stopped writer fails what is left: no job slips in between.
        self._gate = threading.Lock()
        self._writer_stopped: StoreError | None = None
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="bmo-db-read")
        self.closed = False
        self.applied_migrations: list[str] = []  # "owner:version" of what open() ran
        # Transactions the writer committed and jobs it ran: jobs/transactions is the batching gain.
        self.transactions = 0
        self.jobs_run = 0
        self.jobs_failed = 0  # jobs whose write did not happen (their callers got the error)
        self.refused = 0  # jobs refused because the queue was full or the writer had stopped
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # Sticky from a failed write until a commit succeeds again: the store is degraded meanwhile.
        self.failing: StoreError | None = None

    # -- what a backend provides --------------------------------------------------------
    def describe(self) -> str:
        """Where the store is, as it may be shown (a path, or a URL without its password)."""
        return self.dialect

    def store_error(self, exc: BaseException, doing: str = "write") -> StoreError:
        """The :class:`StoreError` that says what ``exc`` means, in words a client may read."""
        return exc if isinstance(exc, StoreError) else StoreError(f"database {doing} failed: {exc}")

    def is_outage(self, exc: BaseException) -> bool:
        """True when ``exc`` is the store failing (disk, server, connection), not a job's own error."""
        return False

    async def _prepare(self) -> None:
        """Before the writer starts (a directory, a reader pool)."""

    def _connect_writer(self) -> Any:
        raise NotImplementedError

    def _ready_writer(self, conn: Any) -> Any:
        """The writer's connection for the next batch (a backend may reconnect here); raises if there is none."""
        return conn

    def _finish_writer(self, conn: Any) -> None:
        if conn is not None:
            conn.close()

    def _read(self, job: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def _close_readers(self) -> None:
        """After the reader threads have stopped."""

    # -- lifecycle -------------------------------------------------------------------
    async def open(self, migrations: Iterable[Migration] = ()) -> None:
        await self._prepare()
        ready: Future = Future()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="bmo-db-writer", daemon=True
        )
        self._writer.start()
        await asyncio.wrap_future(ready)
        self.applied_migrations = await self.run_write(
            functools.partial(apply_migrations, migrations=list(migrations), dialect=self.dialect))

    async def open_for_reads(self) -> None:
        """Readers only: no writer, no migration (``bmo store check`` changes nothing)."""
        await self._prepare()

    async def close(self) -> None:
        """Finish every queued write, then close all connections."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._readers.shutdown, True)
        await asyncio.to_thread(self._close_readers)

    # -- writes: a job is ``job(conn)``, e.g. a Statement or a Batch -------------------
    def write_soon(self, job: Callable[[Any], Any]) -> asyncio.Future:
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

    async def run_write(self, job: Callable[[Any], Any]) -> Any:
        """``await`` a job's result; an engine failure is a :class:`StoreError` (:class:`StoreFull` for a full disk)."""
        try:
            return await self.write_soon(job)
        except (self.engine_error, StoreError) as exc:
            raise self.store_error(exc) from exc

    async def write(self, sql: str, params: tuple | dict = ()) -> int:
        """One statement (``run_write(Statement(sql, params))``); returns the last inserted rowid."""
        return await self.run_write(Statement(sql, params))

    def _write_loop(self, ready: Future) -> None:
        try:
            conn = self._connect_writer()
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
                if not batch:
                    continue
                try:
                    conn = self._ready_writer(conn)
                except self.engine_error as exc:  # no connection for this batch: it fails, the next one tries again
                    conn = None
                    self._fail_batch([(waiter, None, exc) for _, waiter in batch], exc)
                    continue
                try:
                    self._run_batch(conn, batch)
                except BaseException as exc:  # noqa: BLE001 - the batch in hand fails too, then the writer stops
                    self.jobs_failed += len(batch)
                    _settle([(waiter, None, StoreError(f"the database writer failed: {exc}")) for _, waiter in batch])
                    raise  # to the handler below, which stops the writer and fails what is queued
        except BaseException as exc:  # noqa: BLE001 - the writer must not die silently with callers waiting
            stopped = StoreError(f"the database writer stopped after an unexpected error: {type(exc).__name__}: {exc}")
            self._note_failure(stopped)  # told to every caller from now on: no traceback on stderr
        finally:
            self._fail_pending(stopped)
            self._finish_writer(conn)

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
        """Remember a failure of the store or the writer (a job's own constraint error is not one)."""
        outage = self.is_outage(exc)
        if not (outage or isinstance(exc, StoreError)):
            return
        self.last_error = str(self.store_error(exc))
        self.last_error_at = time.time()
        if outage:
            self.failing = self.store_error(exc)

    def _run_batch(self, conn: Any, batch: list) -> None:
        """Run ``batch`` in one transaction, a savepoint per job; every job's future is settled exactly once.

        The engine may roll the whole transaction back by itself (SQLITE_FULL, an I/O error, a
        lost PostgreSQL connection); then the jobs already done are lost too, so they fail with
        that error and the rest of the batch goes on in a new transaction. A failed batch
        leaves the connection outside any transaction, ready for the next one.
        """
        engine_error = self.engine_error
        settled: list[tuple[Any, Any, BaseException | None]] = []
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            conn.execute(self.begin_sql)
        except engine_error as exc:
            self._fail_batch([(waiter, None, exc) for _, waiter in batch], exc)
            return
        if len(batch) == 1 and not self.savepoint_for_one:
            self._run_alone(conn, batch[0])
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
                    except engine_error:
                        pass
                if isinstance(exc, engine_error):
                    self._note_failure(exc)
                if not conn.in_transaction:  # the engine rolled back everything: the earlier jobs are undone too
                    settled += [(f, None, err or exc) for f, _, err in results] + [(fut, None, exc)]
                    results = []
                    try:
                        conn.execute(self.begin_sql)
                    except engine_error as again:
                        self._fail_batch(settled + [(w, None, again) for _, w in batch[index + 1:]], again)
                        return
                    continue
                results.append((fut, None, exc))
        try:
            conn.execute("COMMIT")
        except engine_error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except engine_error:
                    pass
            self._fail_batch(settled + [(fut, None, err or exc) for fut, _, err in results], exc)
            return
        self.transactions += 1
        self.jobs_run += len(results)
        self.jobs_failed += len(settled) + sum(1 for _, _, err in results if err is not None)
        if not settled and not any(err is not None and self.is_outage(err) for _, _, err in results):
            self.failing = None  # a commit with no store failure in it: the store takes writes again
        _settle(settled + results)

    def _run_alone(self, conn: Any, item: tuple) -> None:
        """One job in its own transaction (two round trips fewer than with a savepoint, on a server store)."""
        job, fut = item
        try:
            value = job(conn)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the job's own failure goes to its caller
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except self.engine_error:
                    pass
            self._fail_batch([(fut, None, exc)], exc)
            return
        self.transactions += 1
        self.jobs_run += 1
        self.failing = None
        _settle([(fut, value, None)])

    def _fail_batch(self, results: list, exc: BaseException) -> None:
        self._note_failure(exc)
        self.jobs_failed += len(results)
        _settle(results)

    # -- reads -----------------------------------------------------------------------
    async def run_read(self, job: Callable[[Any], Any]) -> Any:
        if self.closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, self._read, job)
        except self.engine_error as exc:
            raise self.store_error(exc, "read") from exc

    async def fetchall(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        """Rows as dicts keyed by column name."""

        def job(conn: Any) -> list[dict]:
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
