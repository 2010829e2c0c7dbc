"""The names this module had before the store had two backends; new code imports them from ``bmo.store``."""

from bmo.store.batching import MAX_PENDING_WRITES, BatchingStore
from bmo.store.errors import StoreError, StoreFull
from bmo.store.migrations import Migration, collect_migrations
from bmo.store.sqlite.database import DB_FILENAME, SqliteDatabase, store_error

Database = SqliteDatabase

__all__ = ["DB_FILENAME", "MAX_PENDING_WRITES", "BatchingStore", "Database", "Migration", "SqliteDatabase",
           "StoreError", "StoreFull", "collect_migrations", "store_error"]
