"""Counting BMO's ledger rows from outside the server (read-only SQLite, WAL lets us read while it writes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_FILENAME = "bmo.sqlite3"
TABLES = ("openai_compat_runs", "openai_compat_run_events")


def count_rows(data_dir: Path | None) -> dict[str, int | None]:
    """Rows per ledger table; None for a table (or database) that does not exist yet."""
    out: dict[str, int | None] = {t: None for t in TABLES}
    if data_dir is None:
        return out
    path = data_dir / DB_FILENAME
    if not path.exists():
        return out
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        for table in TABLES:
            try:
                out[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:
                out[table] = None
    finally:
        conn.close()
    return out
