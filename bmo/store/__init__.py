"""The store every plugin shares: SQLite (apsw) by default, PostgreSQL (psycopg) at ``[store] url``."""

from bmo.store.backends import StoreUrlError, database_for
from bmo.store.batching import BatchingStore
from bmo.store.errors import StoreError, StoreFull
from bmo.store.migrations import Migration, collect_migrations
from bmo.store.sqlite import DB_FILENAME, SqliteDatabase
from bmo.store.statements import Batch, Statement, Table

Database = SqliteDatabase  # the name callers and tests have used for the SQLite store

__all__ = ["DB_FILENAME", "Batch", "BatchingStore", "Database", "Migration", "SqliteDatabase", "Statement",
           "StoreError", "StoreFull", "StoreUrlError", "Table", "collect_migrations", "database_for"]
