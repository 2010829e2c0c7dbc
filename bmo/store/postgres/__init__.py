"""The shared backend: one PostgreSQL database for many workers and hosts (psycopg 3)."""

from bmo.store.postgres.database import PostgresDatabase

__all__ = ["PostgresDatabase"]
