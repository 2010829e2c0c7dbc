"""Writes as values: a statement, a table's INSERT/UPDATE builders, and a batch run as one writer job.

The agent store and the openai_compat ledger build their rows' SQL here, so there is one
builder; a :class:`Statement` or a :class:`Batch` is itself a job for ``Database.run_write``
or ``Database.write_soon`` (one savepoint in the writer's transaction).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class Statement(NamedTuple):
    """One SQL statement and its parameters (a tuple for ``?``, a dict for ``:name``)."""

    sql: str
    params: tuple | dict = ()

    def __call__(self, conn: Any) -> int:
        """Run it as a writer job; returns the last inserted rowid."""
        conn.execute(self.sql, self.params)
        return conn.last_insert_rowid()


class Batch:
    """Statements run in order as one writer job: all land or, in its savepoint, none do."""

    __slots__ = ("statements",)

    def __init__(self, statements: Iterable[Statement]):
        self.statements = tuple(statements)

    def __call__(self, conn: Any) -> int:
        for sql, params in self.statements:
            conn.execute(sql, params)
        return conn.last_insert_rowid()

    def __len__(self) -> int:
        return len(self.statements)


@dataclass(frozen=True)
class Table:
    """A table's name, columns and key column, to build its INSERT and UPDATE statements."""

    name: str
    columns: tuple[str, ...]
    key: str = "id"

    def insert(self, row: Mapping[str, Any], columns: Sequence[str] | None = None) -> Statement:
        """INSERT of ``row`` for ``columns`` (default: every column of the table that ``row`` has)."""
        cols = tuple(columns) if columns is not None else tuple(c for c in self.columns if c in row)
        return _statement(_insert_sql(self.name, cols), tuple(_sql_value(row[c]) for c in cols))

    def insert_values(self, values: tuple) -> Statement:
        """INSERT of a whole row given in the table's column order (the hot path: no dict, no lookups)."""
        return _statement(self._whole_row_sql, values)

    @functools.cached_property
    def _whole_row_sql(self) -> str:
        return _insert_sql(self.name, self.columns)

    def update(self, key: Any, fields: Mapping[str, Any], columns: Sequence[str] | None = None) -> Statement:
        """UPDATE of the row whose key is ``key``, setting ``columns`` (default: the table's columns in ``fields``)."""
        cols = tuple(columns) if columns is not None else tuple(
            c for c in self.columns if c in fields and c != self.key)
        return _statement(_update_sql(self.name, cols, self.key), (*(_sql_value(fields[c]) for c in cols), key))


def _statement(sql: str, params: tuple) -> Statement:
    # tuple.__new__ skips NamedTuple's Python-level __new__: a third of a ledger event's cost.
    return _tuple_new(Statement, (sql, params))


_tuple_new = tuple.__new__


# The same few column sets recur on every request: build each SQL text once.
@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, cols: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


@functools.lru_cache(maxsize=256)
def _update_sql(table: str, cols: tuple[str, ...], key: str) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} WHERE {key} = ?"


def _sql_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value
