"""A PostgreSQL store behind the batching writer (psycopg 3, sync, in the writer's and readers' threads).

The writer thread owns one autocommit connection and issues BEGIN/SAVEPOINT/COMMIT itself,
exactly as on SQLite, so jobs stay ``job(conn)``; when the server goes away the batch in hand
fails, the store is degraded, and the next batch connects again. Reads borrow connections
from a small ``psycopg_pool.ConnectionPool``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bmo.store.batching import MAX_PENDING_WRITES, BatchingStore, _settle
from bmo.store.errors import StoreError
from bmo.store.postgres import dialect
from bmo.store.postgres.connection import Connection, Cursor
from bmo.store.statements import Batch, Statement
from bmo.store.urls import redacted_url

_PLAIN = (Statement, Batch)  # jobs that are only SQL: safe to run again after a rollback
READERS = 2
CONNECT_TIMEOUT_S = 5  # a server that does not answer fails the batch in hand, not the writer
READ_WAIT_S = 3.0  # a read waits this long for a pooled connection before it fails
# The pool's own warnings name the server's address; the store reports its failures itself (posture, errors).
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


class PostgresDatabase(BatchingStore):
    """Async front of one PostgreSQL database, with the same promises as the SQLite one."""

    dialect = "postgresql"
    engine_error = psycopg.Error
    begin_sql = "BEGIN"
    savepoint_for_one = False

    def __init__(self, url: str, *, max_pending: int = MAX_PENDING_WRITES, readers: int = READERS):
        super().__init__(max_pending=max_pending, readers=readers)
        self.url = url
        self._connect_args = {"autocommit": True, "cursor_factory": Cursor,
                              "connect_timeout": CONNECT_TIMEOUT_S, "application_name": "bmo"}
        self._pool = ConnectionPool(url, min_size=1, max_size=readers, kwargs=self._connect_args,
                                    open=False, timeout=READ_WAIT_S, name="bmo-readers")

    def describe(self) -> str:
        return redacted_url(self.url)

    def store_error(self, exc: BaseException, doing: str = "write") -> StoreError:
        return dialect.store_error(exc, doing)

    def is_outage(self, exc: BaseException) -> bool:
        return dialect.is_outage(exc)

    def _connect_writer(self) -> Connection:
        try:
            return Connection(psycopg.connect(self.url, **self._connect_args))
        except psycopg.Error as exc:  # open() tells the operator, in words without the address
            raise dialect.store_error(exc, "open") from None

    def _run_batch(self, conn: Connection, batch: list) -> None:
        """Plain statements (the ledger's, the agent store's) in one round trip; anything else, or a failure, job by job."""
        if all(type(job) in _PLAIN for job, _ in batch):
            ids = conn.run_at_once([job for job, _ in batch])
            if ids is not None:
                self.transactions += 1
                self.jobs_run += len(batch)
                self.failing = None
                _settle([(fut, value, None) for (_, fut), value in zip(batch, ids)])
                return
        super()._run_batch(conn, batch)  # a savepoint per job: each failure goes to its own caller

    def _ready_writer(self, conn: Connection | None) -> Connection:
        if conn is not None and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
        return Connection(psycopg.connect(self.url, **self._connect_args))

    async def _prepare(self) -> None:
        import asyncio

        def open_pool() -> None:
            # One direct connection first: its error says why (refused, credentials); the pool's only "timeout".
            psycopg.connect(self.url, **self._connect_args).close()
            self._pool.open(True, CONNECT_TIMEOUT_S)

        try:
            await asyncio.to_thread(open_pool)
        except psycopg.Error as exc:
            await asyncio.to_thread(self._pool.close)
            raise dialect.store_error(exc, "open") from None

    def _read(self, job: Callable[[Connection], Any]) -> Any:
        try:
            with self._pool.connection() as raw:
                return job(Connection(raw))
        except psycopg.Error as exc:
            if not dialect.is_outage(exc):
                raise
        # A pooled connection the server dropped (it restarted): the pool discarded it; one more try.
        with self._pool.connection() as raw:
            return job(Connection(raw))

    def _close_readers(self) -> None:
        self._pool.close()
