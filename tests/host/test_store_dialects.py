"""One schema on two engines: every owner's migrations build the same tables on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import apsw
from store_schema import postgresql_schema, sqlite_schema

from bmo.plugins import create_plugin_manager
from bmo.store import collect_migrations, database_for
from bmo.store.sql_dialect import POSTGRESQL, SQLITE, dialect_of, table_names


def _both_shapes(tmp_path, postgres_cluster):
    import psycopg

    migrations = collect_migrations(create_plugin_manager())  # every installed owner: agent, openai_compat, hello...
    lite = apsw.Connection(str(tmp_path / "shape.sqlite3"))
    for m in migrations:
        lite.execute(m.sql_for(SQLITE))
    url = postgres_cluster.new_store_url()
    with psycopg.connect(url, autocommit=True) as pg:
        for m in migrations:
            pg.execute(m.sql_for(POSTGRESQL))
        return migrations, sqlite_schema(lite), postgresql_schema(pg)


def test_every_owners_migrations_build_the_same_tables_columns_keys_and_indexes_on_both(tmp_path, postgres_cluster):
    migrations, on_sqlite, on_postgresql = _both_shapes(tmp_path, postgres_cluster)
    assert {m.owner for m in migrations} >= {"agent", "openai_compat"}
    assert sorted(on_postgresql) == sorted(on_sqlite)
    for table, shape in on_sqlite.items():
        assert on_postgresql[table] == shape, table


def test_the_shared_schema_has_no_engine_only_types(tmp_path, postgres_cluster):
    _, _, on_postgresql = _both_shapes(tmp_path, postgres_cluster)
    # Epoch seconds need 8-byte floats and ids 8-byte integers, as SQLite gives them.
    kinds = {kind for shape in on_postgresql.values() for _, kind, _, _ in shape["columns"]}
    assert kinds <= {"integer", "float", "text"}


async def test_a_computed_default_gives_the_same_value_on_both_backends(tmp_path, store_url):
    db = database_for(store_url, tmp_path)
    await db.open(collect_migrations(create_plugin_manager()))
    try:
        await db.write("INSERT INTO hello_visits (name) VALUES (?)", ("ada",))
        row = await db.fetchone("SELECT id, at FROM hello_visits WHERE name = ?", ("ada",))
    finally:
        await db.close()
    assert row["id"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["at"]), row["at"]


async def test_a_job_knows_its_dialect_and_the_tables_it_can_see(tmp_path, store_url, store_backend):
    db = database_for(store_url, tmp_path)
    await db.open(collect_migrations(create_plugin_manager("openai_compat")))
    try:
        dialect, tables = await db.run_read(lambda conn: (dialect_of(conn), table_names(conn)))
    finally:
        await db.close()
    assert dialect == store_backend
    assert {"sessions", "runs", "openai_compat_runs", "openai_compat_responses"} <= tables
