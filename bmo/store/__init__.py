"""The SQLite store every plugin shares."""

from bmo.store.database import DB_FILENAME, Database, Migration, StoreError, StoreFull, collect_migrations
from bmo.store.statements import Batch, Statement, Table

__all__ = ["DB_FILENAME", "Batch", "Database", "Migration", "Statement", "StoreError", "StoreFull", "Table", "collect_migrations"]
