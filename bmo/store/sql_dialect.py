"""Which SQL dialect a store connection speaks, for the few texts that cannot be the same on both backends.

Everything else is written once in the dialect both understand; a job that needs one of
those few texts asks its connection here (an apsw connection is SQLite, anything else is
the PostgreSQL backend's adapter).
"""

from __future__ import annotations

from typing import Any

import apsw

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def dialect_of(conn: Any) -> str:
    """``"sqlite"`` for an apsw connection, else ``"postgresql"``."""
    return SQLITE if isinstance(conn, apsw.Connection) else POSTGRESQL


def table_names(conn: Any) -> set[str]:
    """The tables the store holds (in the connection's schema, on PostgreSQL)."""
    if dialect_of(conn) == SQLITE:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        sql = ("SELECT table_name FROM information_schema.tables"
               " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    return {name for (name,) in conn.execute(sql)}
