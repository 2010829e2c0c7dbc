"""The store a configuration names: SQLite in the data dir (the default) or PostgreSQL at ``[store] url``."""

from __future__ import annotations

from pathlib import Path

from bmo.store.batching import BatchingStore
from bmo.store.urls import is_postgres_url


class StoreUrlError(ValueError):
    """``[store] url`` names nothing this build can open."""


def database_for(url: str, data_dir: Path, **options) -> BatchingStore:
    """The (not yet opened) database for ``url``; empty means ``<data_dir>/bmo.sqlite3``; ``options``: ``max_pending``."""
    from bmo.store.sqlite import DB_FILENAME, SqliteDatabase

    if not url:
        return SqliteDatabase(data_dir / DB_FILENAME, **options)
    if not is_postgres_url(url):
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise StoreUrlError(
            f"[store] url: {scheme!r} is not a store BMO knows; use \"postgresql://user@host:5432/dbname\" "
            "(or leave it empty for SQLite in the data dir)")
    try:
        from bmo.store.postgres import PostgresDatabase
    except ImportError as exc:  # psycopg is an extra: say how to get it
        raise StoreUrlError(
            f"[store] url is a PostgreSQL URL but psycopg is not installed ({exc.name}): "
            "pip install 'bmo[postgresql]'") from None
    return PostgresDatabase(url, **options)
