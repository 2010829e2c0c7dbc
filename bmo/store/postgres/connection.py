"""A psycopg connection dressed as the few apsw methods store jobs use.

Jobs are ``job(conn)`` on both backends: ``conn.execute(sql, params)`` returns an iterable
cursor (``fetchall``, ``fetchone``, ``getdescription``), and ``changes()``,
``last_insert_rowid()`` and ``in_transaction`` answer as apsw's do.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from bmo.store.postgres.dialect import inserted_table, text_safe, translate
from bmo.store.statements import Batch


class Cursor(psycopg.Cursor):
    """psycopg's cursor, empty (not an error) after a statement that returns no rows, as apsw's is."""

    def __iter__(self):
        return iter(self.fetchall())

    def fetchall(self) -> list:
        try:
            return super().fetchall()
        except psycopg.ProgrammingError:  # "the last operation didn't produce a result" (asked after any pipeline sync)
            if self.description is None:
                return []
            raise

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except psycopg.ProgrammingError:
            if self.description is None:
                return None
            raise

    def getdescription(self) -> tuple:
        return tuple((column.name, None) for column in self.description or ())


# The writer's own transaction control: held back and sent with the next real statement, in one round trip.
_DEFERRED = frozenset(("BEGIN", "SAVEPOINT job", "RELEASE job"))


class Connection:
    """What a store job sees on PostgreSQL; ``raw`` is the psycopg connection (autocommit: BEGIN is explicit).

    Round trips are what a server store costs, so the writer's BEGIN / SAVEPOINT / RELEASE wait
    and travel in one pipeline with the job's first statement (or the COMMIT); a transaction in
    which no job ran a statement never reaches the server at all.
    """

    __slots__ = ("raw", "_last", "_rowid", "_sequences", "_pending", "_skip_release")

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw
        self._last: Cursor | None = None
        self._rowid: int | None = None
        self._sequences: dict[str, str | None] = {}  # table -> its serial/identity sequence, looked up once
        self._pending: list[str] = []
        self._skip_release = False

    def execute(self, sql: str, params: tuple | list | dict = ()) -> Cursor | None:
        if sql in _DEFERRED:
            if sql == "RELEASE job" and self._skip_release:  # its savepoint never reached the server
                self._skip_release = False
            else:
                self._pending.append(sql)
            return None
        if sql == "ROLLBACK TO job" and self._pending and self._pending[-1] == "SAVEPOINT job":
            self._pending.pop()  # the job ran nothing: nothing to roll back
            self._skip_release = True
            return None
        if sql in ("COMMIT", "ROLLBACK"):
            if self._pending and self._pending[0] == "BEGIN":  # never started on the server: nothing to end
                self._pending.clear()
                return None
            if sql == "ROLLBACK":
                self._pending.clear()
        cursor = self.raw.cursor()
        text = translate(sql, bool(params))
        if params:
            params = text_safe(params)
        table = inserted_table(sql)
        sequence = self._sequence_of(table) if table is not None else None
        self._rowid = self._send(cursor, text, params, sequence)
        self._last = cursor
        return cursor

    def _send(self, cursor: Cursor, text: str, params: Any, sequence: str | None) -> int | None:
        """Run ``text`` after what is pending; returns the id the INSERT drew from ``sequence``, if any."""
        pending, self._pending = self._pending, []
        if not params:  # maybe several statements: those cannot go through a pipeline
            if pending:
                self.raw.execute("; ".join(pending))
            cursor.execute(text)
            return self.raw.execute("SELECT currval(%s::regclass)", (sequence,)).fetchone()[0] if sequence else None
        if not pending and sequence is None:
            cursor.execute(text, params)
            return None
        with self.raw.pipeline():
            for control in pending:
                self.raw.execute(control)
            cursor.execute(text, params)
            rowid = self.raw.cursor().execute("SELECT currval(%s::regclass)", (sequence,)) if sequence else None
        return rowid.fetchone()[0] if rowid is not None else None

    def run_at_once(self, jobs: list) -> list | None:
        """Every statement of ``jobs`` (Statements and Batches) in one transaction and one round trip.

        Returns each job's last inserted id; None when anything failed, with all of it rolled
        back: the writer then runs the batch again a savepoint per job, to tell whose it was.
        """
        ids = []
        try:
            with self.raw.pipeline():
                self.raw.execute("BEGIN")
                for job in jobs:
                    last = None
                    for sql, params in (job.statements if isinstance(job, Batch) else (job,)):
                        table = inserted_table(sql)
                        sequence = self._sequence_of(table) if table is not None else None
                        values = text_safe(params) if params else None
                        self.raw.cursor().execute(translate(sql, bool(params)), values)
                        if sequence is not None:
                            last = self.raw.cursor().execute("SELECT currval(%s::regclass)", (sequence,))
                    ids.append(last)
                self.raw.execute("COMMIT")
        except Exception:  # noqa: BLE001 - whatever it was, the job-by-job run says whose and raises it there
            if not self.broken and self.raw.info.transaction_status != TransactionStatus.IDLE:
                try:
                    self.raw.execute("ROLLBACK")
                except psycopg.Error:
                    pass
            return None
        return [cursor.fetchone()[0] if cursor is not None else None for cursor in ids]

    def _sequence_of(self, table: str) -> str | None:
        if table not in self._sequences:
            row = self.raw.execute(
                "SELECT d.objid::regclass::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid"
                " WHERE d.refobjid = to_regclass(%s) AND c.relkind = 'S' AND d.deptype IN ('a', 'i') LIMIT 1",
                (table,)).fetchone()
            if row is None and self.raw.execute("SELECT to_regclass(%s) IS NULL", (table,)).fetchone()[0]:
                return None  # no such table (yet): the INSERT will say so; ask again next time
            self._sequences[table] = row[0] if row else None
        return self._sequences[table]

    def changes(self) -> int:
        """Rows the last statement inserted, updated or deleted."""
        return max(self._last.rowcount, 0) if self._last is not None else 0

    def last_insert_rowid(self) -> int | None:
        """The id the last INSERT drew from its table's serial or identity column (None for a table without one)."""
        return self._rowid

    @property
    def in_transaction(self) -> bool:
        """False outside a transaction, and when the connection is lost (the server rolled it all back)."""
        if self._pending and self._pending[0] == "BEGIN":
            return True
        return self.raw.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR,
                                                   TransactionStatus.ACTIVE)

    @property
    def broken(self) -> bool:
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()
