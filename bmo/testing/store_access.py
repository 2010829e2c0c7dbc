"""A test's own synchronous connection to a store on either backend, beside (or after) the server using it.

For seeding rows and reading them back from outside the server: an apsw connection to the
data dir's SQLite file, or a PostgreSQL connection in the store job adapter (``?`` and
``:name`` placeholders work on both), in autocommit mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def raw_connection(store_url: str, data_dir: Path) -> Iterator[Any]:
    """``conn.execute(sql, params)`` on the store ``store_url`` names (empty: ``data_dir``'s SQLite file)."""
    if not store_url:
        import apsw

        from bmo.store import DB_FILENAME

        conn = apsw.Connection(str(Path(data_dir) / DB_FILENAME))
        conn.setbusytimeout(5000)
    else:
        import psycopg

        from bmo.store.postgres.connection import Connection, Cursor

        conn = Connection(psycopg.connect(store_url, autocommit=True, cursor_factory=Cursor))
    try:
        yield conn
    finally:
        conn.close()
