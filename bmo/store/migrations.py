"""One registry of migrations and one ``bmo_migrations`` history, whichever backend runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A fixed key for pg_advisory_xact_lock: servers opening one PostgreSQL store at once migrate one at a time.
_PG_MIGRATION_LOCK = 0x626D6F6D  # "bmom"

_HISTORY_SQL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS bmo_migrations ("
              " owner TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL"
              " DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), PRIMARY KEY (owner, version))",
    "postgresql": "CREATE TABLE IF NOT EXISTS bmo_migrations ("
                  " owner TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL"
                  " DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')),"
                  " PRIMARY KEY (owner, version))",
}


@dataclass(frozen=True)
class Migration:
    """One version of an owner's tables; ``postgresql`` replaces ``sql`` on PostgreSQL when the dialects differ."""

    owner: str
    version: int
    sql: str
    postgresql: str | None = None

    def sql_for(self, dialect: str) -> str:
        """The text to run on ``dialect`` (``"sqlite"`` or ``"postgresql"``)."""
        return self.postgresql if dialect == "postgresql" and self.postgresql is not None else self.sql


def collect_migrations(pm) -> list[Migration]:
    """Every plugin's migrations, by owner then version (``register(owner, version, sql, postgresql=None)``)."""
    migrations: list[Migration] = []

    def register(owner: str, version: int, sql: str, postgresql: str | None = None) -> None:
        migrations.append(Migration(owner, version, sql, postgresql))

    pm.hook.bmo_migrations(register=register)
    return sorted(migrations, key=lambda m: (m.owner, m.version))


def applied_versions(conn: Any, dialect: str) -> set[tuple[str, int]]:
    """The ``(owner, version)`` pairs this store has run (creating the history table if missing)."""
    conn.execute(_HISTORY_SQL[dialect])
    return {(o, v) for o, v in conn.execute("SELECT owner, version FROM bmo_migrations")}


def apply_migrations(conn: Any, migrations: list[Migration], dialect: str) -> list[str]:
    """Run the migrations not yet in the history, as one writer job; returns ``owner:version`` of each applied."""
    if dialect == "postgresql":  # held to the commit: another server's migrations wait, then find them done
        conn.execute(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    done = applied_versions(conn, dialect)
    applied = []
    for m in migrations:
        if (m.owner, m.version) in done:
            continue
        conn.execute(m.sql_for(dialect))
        conn.execute("INSERT INTO bmo_migrations (owner, version) VALUES (?, ?)", (m.owner, m.version))
        applied.append(f"{m.owner}:{m.version}")
    return applied


def pending_migrations(conn: Any, migrations: list[Migration], dialect: str) -> list[str]:
    """``owner:version`` of the migrations this store has not run yet (a read: creates nothing on PostgreSQL)."""
    if dialect == "postgresql":
        exists = conn.execute("SELECT to_regclass('bmo_migrations') IS NOT NULL").fetchall()[0][0]
    else:
        exists = bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bmo_migrations'").fetchall())
    done = {(o, v) for o, v in conn.execute("SELECT owner, version FROM bmo_migrations")} if exists else set()
    return [f"{m.owner}:{m.version}" for m in migrations if (m.owner, m.version) not in done]
