"""A store's shape as plain values (tables, columns, keys, indexes), read the same way from SQLite and PostgreSQL.

Two stores built by the same migrations must read back equal here: same tables, same columns in
the same order with the same type family, nullability and default, same keys and same indexes
(partial ones with the same condition). Names the engines make up themselves (SQLite's
``sqlite_autoindex_*``, PostgreSQL's ``*_pkey`` / ``*_key``) are left out; what they stand for is
compared as the primary key and the unique column sets.
"""

from __future__ import annotations

import re
from typing import Any

# The PostgreSQL types that hold what SQLite's affinities hold. PostgreSQL's 4-byte ``integer`` and ``real``
# are not here: they would truncate what SQLite keeps, so they show as themselves and differ.
_POSTGRESQL_FAMILY = {"bigint": "integer", "double precision": "float", "text": "text", "bytea": "bytes"}


def _sqlite_family(declared: str) -> str:
    """The column's SQLite affinity, by SQLite's own rules (so ``BIGINT`` and ``DOUBLE PRECISION`` texts read right)."""
    kind = declared.upper()
    if "INT" in kind:
        return "integer"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not kind or "BLOB" in kind:
        return "bytes"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "float"
    return "numeric"


SKIPPED_TABLES = {"bmo_migrations", "sqlite_sequence"}


def _default(value: str | None) -> str | None:
    """A column default without PostgreSQL's casts: ``'chat'::text`` and SQLite's ``'chat'`` read the same."""
    if value is None:
        return None
    if re.search(r"\w\(", value):  # a computed default: the engines say it differently, a test checks its values
        return "<computed>"
    return re.sub(r"::[a-z ]+", "", value).strip("()")


def _condition(text: str | None) -> str | None:
    """A partial index's WHERE clause without casts, brackets, spaces or case."""
    if not text:
        return None
    return re.sub(r"[()\s]", "", re.sub(r"::[a-z ]+", "", text)).lower()


def sqlite_schema(conn: Any) -> dict[str, dict]:
    """The shape of an apsw connection's database."""
    out: dict[str, dict] = {}
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    for table in tables:
        if table in SKIPPED_TABLES:
            continue
        info = list(conn.execute(f"PRAGMA table_info({table})"))
        columns = [(name, _sqlite_family(decl), bool(notnull) or pk > 0, _default(dflt))
                   for _, name, decl, notnull, dflt, pk in info]
        primary = tuple(name for _, name, *_rest, pk in sorted(info, key=lambda r: r[5]) if pk)
        # A lone INTEGER PRIMARY KEY is the rowid: numbered by the engine, like an identity column.
        identity = len(primary) == 1 and any(name == primary[0] and decl.upper() == "INTEGER"
                                             for _, name, decl, *_ in info)
        uniques, indexes = set(), {}
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            cols = tuple(c for _, _, c in conn.execute(f"PRAGMA index_info({name})"))
            if origin == "u":
                uniques.add(cols)
            elif origin == "c":
                sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchall()[0][0]
                where = sql.split(" WHERE ", 1)[1] if partial else None
                indexes[name] = (cols, bool(unique), _condition(where))
        out[table] = {"columns": columns, "primary_key": primary, "identity": identity,
                      "unique": uniques, "indexes": indexes}
    return out


def postgresql_schema(conn: Any) -> dict[str, dict]:
    """The shape of a psycopg connection's current schema."""
    out: dict[str, dict] = {}
    tables = [name for (name,) in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name")]
    for table in tables:
        if table in SKIPPED_TABLES:
            continue
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
        columns = [(name, _POSTGRESQL_FAMILY.get(kind, kind), nullable == "NO", _default(dflt)) for name, kind, nullable, dflt, _ in rows]
        identity = any(ident == "YES" for *_, ident in rows)
        primary, uniques, indexes = (), set(), {}
        for name, is_primary, unique, cols, where, is_constraint in conn.execute(
                "SELECT i.relname, x.indisprimary, x.indisunique,"
                " ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
                "       JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n),"
                " pg_get_expr(x.indpred, x.indrelid),"
                " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                " WHERE t.relname = %s AND t.relnamespace = current_schema()::regnamespace", (table,)):
            if is_primary:
                primary = tuple(cols)
            elif is_constraint:
                uniques.add(tuple(cols))
            else:
                indexes[name] = (tuple(cols), bool(unique), _condition(where))
        out[table] = {"columns": columns, "primary_key": primary, "identity": identity,
                      "unique": uniques, "indexes": indexes}
    return out
