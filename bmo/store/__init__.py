"""The SQLite store every plugin shares."""

from bmo.store.database import DB_FILENAME, Database, Migration, StoreError, collect_migrations

__all__ = ["DB_FILENAME", "Database", "Migration", "StoreError", "collect_migrations"]
