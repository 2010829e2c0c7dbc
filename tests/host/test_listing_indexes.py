"""Listing queries on tables that grow per request read an index, never the whole table, on both backends.

Each test runs the query the code really sends (recorded from the store method that builds it)
under ``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN`` with scans and sorts priced out (PostgreSQL,
whose planner otherwise prefers them on a small test table), and checks the index it names and
that no sort of the rows follows.
"""

from __future__ import annotations

from typing import Any

import pytest

from bmo.agent.store import AgentStore
from bmo.plugins import create_plugin_manager
from bmo.store import collect_migrations, database_for
from bmo.store.retention import RULES, batch_job, cuts_for
from bmo.testing.store_access import raw_connection


class RecordingDb:
    """The host database, remembering each read a store method sends through it."""

    def __init__(self, db: Any):
        self.db = db
        self.reads: list[tuple[str, tuple]] = []

    async def fetchall(self, sql: str, params: tuple = ()) -> list:
        self.reads.append((sql, tuple(params)))
        return await self.db.fetchall(sql, params)


class RecordingConnection:
    """A job's connection, remembering each statement the job executes."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.statements: list[tuple[str, tuple]] = []

    def execute(self, sql: str, params: tuple = ()) -> Any:
        self.statements.append((sql, tuple(params)))
        return self.conn.execute(sql, params)


@pytest.fixture
async def store(tmp_path, store_url):
    db = database_for(store_url, tmp_path)
    await db.open(collect_migrations(create_plugin_manager("openai_compat")))
    try:
        yield db, (store_url, tmp_path)
    finally:
        await db.close()


def plan(where: tuple[str, Any], sql: str, params: tuple) -> str:
    """The query plan as one lowercase text."""
    with raw_connection(*where) as conn:
        if where[0]:
            for method in ("seqscan", "bitmapscan", "sort"):  # a plan only an index can make cheap
                conn.execute(f"SET enable_{method} = off")
            rows = conn.execute("EXPLAIN " + sql, params).fetchall()
            return "\n".join(r[0] for r in rows).lower()
        return "\n".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()).lower()


def assert_reads_index(text: str, index: str, table: str) -> None:
    assert index in text, text
    assert f"seq scan on {table}" not in text, text  # PostgreSQL
    assert f"scan {table}\n" not in text + "\n", text  # SQLite: a scan that names no index
    assert "temp b-tree for order by" not in text, text  # SQLite sorting the rows itself
    assert "sort" not in text.replace("sort key", ""), text  # PostgreSQL sorting the rows itself


async def test_one_owners_session_listing_reads_the_owner_index(store):
    db, where = store
    recording = RecordingDb(db)
    agent = AgentStore(recording)
    await agent.session_rows(limit=21, before=None, include_ephemeral=False, created_by="alice")
    await agent.session_rows(limit=21, before=(1.0, "s-1"), include_ephemeral=False, created_by="alice")
    for sql, params in recording.reads:
        assert_reads_index(plan(where, sql, params), "sessions_owner_created", "sessions")


async def test_the_operators_session_listing_reads_the_creation_index(store):
    db, where = store
    recording = RecordingDb(db)
    agent = AgentStore(recording)
    await agent.session_rows(limit=21, before=None, include_ephemeral=False)
    await agent.session_rows(limit=21, before=(1.0, "s-1"), include_ephemeral=True)
    for sql, params in recording.reads:
        assert_reads_index(plan(where, sql, params), "sessions_created", "sessions")


@pytest.mark.parametrize(("filters", "index"), [
    ({"requester": "alice"}, "openai_compat_runs_requester"),
    ({"route": "chat_completions"}, "openai_compat_runs_route"),
    ({"outcome": "final_answer"}, "openai_compat_runs_outcome"),
    ({"session_id": "s-1"}, "openai_compat_runs_session"),
])
async def test_a_filtered_runs_listing_reads_its_filters_index(store, filters, index):
    from bmo_openai_compat.observe.ledger import Ledger

    db, where = store
    recording = RecordingDb(db)
    await Ledger(recording, lambda *a, **k: None).list_runs(limit=20, exclude="req_self", **filters)
    (sql, params), = recording.reads
    assert_reads_index(plan(where, sql, params), index, "openai_compat_runs")


async def test_a_retention_pass_finds_old_stored_responses_by_age_through_an_index(store):
    from bmo.config import load_config

    db, where = store
    retention = load_config(create_plugin_manager("")).section("store").retention
    rule = next(r for r in RULES if r.family == "responses")

    def statements(conn) -> list[tuple[str, tuple]]:
        cut = next(c for c in cuts_for(conn, retention) if c.rule == rule)
        recording = RecordingConnection(conn)
        batch_job(cut, 500)(recording)  # an empty table: only the SELECT of the keys runs
        return recording.statements

    (sql, params), = await db.run_read(statements)
    text = plan(where, sql, params)
    assert "openai_compat_responses_created" in text, text
    assert "seq scan on openai_compat_responses" not in text, text
