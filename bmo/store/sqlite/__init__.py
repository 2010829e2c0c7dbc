"""The embedded backend: one SQLite file in the data dir, through apsw."""

from bmo.store.sqlite.database import DB_FILENAME, SqliteDatabase

__all__ = ["DB_FILENAME", "SqliteDatabase"]
