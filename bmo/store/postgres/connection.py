"""A psycopg connection dressed as the few apsw methods store jobs use.

Jobs are ``job(conn)`` on both backends: ``conn.execute(sql, params)`` returns an iterable
cursor (``fetchall``, ``fetchone``, ``getdescription``), and ``changes()``,
``last_insert_rowid()`` and ``in_transaction`` answer as apsw's do.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from bmo.store.postgres.dialect import inserted_table, translate


class Cursor(psycopg.Cursor):
    """psycopg's cursor, empty (not an error) after a statement that returns no rows, as apsw's is."""

    def __iter__(self):
        if self.description is None:
            return iter(())
        return super().__iter__()

    def fetchall(self) -> list:
        return [] if self.description is None else super().fetchall()

    def fetchone(self) -> Any:
        return None if self.description is None else super().fetchone()

    def getdescription(self) -> tuple:
        return tuple((column.name, None) for column in self.description or ())


class Connection:
    """What a store job sees on PostgreSQL; ``raw`` is the psycopg connection (autocommit: BEGIN is explicit)."""

    __slots__ = ("raw", "_last", "_rowid", "_sequences")

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw
        self._last: Cursor | None = None
        self._rowid: int | None = None
        self._sequences: dict[str, str | None] = {}  # table -> its serial/identity sequence, looked up once

    def execute(self, sql: str, params: tuple | list | dict = ()) -> Cursor:
        cursor = self.raw.cursor()
        text = translate(sql, bool(params))
        table = inserted_table(sql)
        sequence = self._sequence_of(table) if table is not None else None
        if sequence is None:
            cursor.execute(text, params or None)
            self._rowid = None
        else:  # the new id travels back with the INSERT: one round trip, not two
            with self.raw.pipeline():
                cursor.execute(text, params or None)
                rowid = self.raw.cursor().execute("SELECT currval(%s::regclass)", (sequence,))
            self._rowid = rowid.fetchone()[0]
        self._last = cursor
        return cursor

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
        return self.raw.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR,
                                                   TransactionStatus.ACTIVE)

    @property
    def broken(self) -> bool:
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()
