"""Listing queries on 100,000 rows, with the listing indexes and without them, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.listing_indexes [--rows 100000] [--repeat 50] [--sqlite-only]

A store migrated as a server migrates it, filled with ``--rows`` sessions (200 creators) and as
many ledger rows (200 requesters) and stored responses. Each query is the SQL the code sends
(recorded from ``AgentStore.session_rows`` / ``Ledger.list_runs`` / a retention batch), timed as
the median of ``--repeat`` runs, then timed again after dropping the indexes agent 9 and
openai_compat 5 added. PostgreSQL runs in a throw-away cluster (``bmo.testing.postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bmo.agent.store import AgentStore
from bmo.plugins import create_plugin_manager
from bmo.store import collect_migrations, database_for
from bmo.testing.store_access import raw_connection

NEW_INDEXES = ("sessions_owner_created", "sessions_created", "openai_compat_runs_requester",
               "openai_compat_responses_created")
OWNERS = 200
INSERT = "ledger row insert (µs per row, not ms)"


class RecordingDb:
    """Stands in for the host database: remembers the read a store method builds, answers nothing."""

    def __init__(self):
        self.reads: list[tuple[str, tuple]] = []

    async def fetchall(self, sql: str, params: tuple = ()) -> list:
        self.reads.append((sql, tuple(params)))
        return []


async def queries() -> dict[str, tuple[str, tuple]]:
    from bmo_openai_compat.observe.ledger import Ledger

    recording = RecordingDb()
    agent = AgentStore(recording)
    await agent.session_rows(limit=21, before=None, include_ephemeral=False, created_by="user-7")
    await agent.session_rows(limit=21, before=None, include_ephemeral=False)
    await Ledger(recording, lambda *a, **k: None).list_runs(limit=20, exclude="req_self", requester="user-7")
    await Ledger(recording, lambda *a, **k: None).list_runs(limit=20, exclude="req_self", requester="newcomer")
    names = ("GET /v1/sessions, one owner", "GET /v1/sessions, operator", "GET /v1/openai-compat/runs, one owner",
             "GET /v1/openai-compat/runs, an owner with no rows yet")
    found = dict(zip(names, recording.reads))
    cutoff = time.time() - 60 * 86400  # older than every row: the steady state, a pass that finds nothing
    found["retention pass over stored responses, nothing due"] = (
        "SELECT response_id FROM openai_compat_responses WHERE (created_at < ?)"
        " AND status NOT IN ('in_progress', 'queued') LIMIT ?", (cutoff, 500))
    return found


def fill(where: tuple[str, Path], rows: int) -> None:
    now = time.time()
    sessions = [(f"s-{i:06d}", "m", f"user-{i % OWNERS}", now - (rows - i)) for i in range(rows)]
    runs = [(f"req_{i:06d}", f"user-{i % OWNERS}", "2026-01-01T00:00:00.000Z") for i in range(rows)]
    # A tenth of the responses are past 30 days: what a pass looks for among the rest.
    responses = [(f"resp_{i:06d}", f"s-{i // 5:06d}", now - (40 if i < rows // 10 else 1) * 86400)
                 for i in range(rows)]  # five responses a session
    with raw_connection(*where) as conn:
        inserts = (
            ("INSERT INTO sessions (id, model, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
             [(*s, s[3]) for s in sessions]),
            ("INSERT INTO openai_compat_runs (request_id, route, status, requester, started_at)"
             " VALUES (?, 'chat_completions', 'finished', ?, ?)", runs),
            ("INSERT INTO openai_compat_responses (response_id, request_id, session_id, status, created_at)"
             " VALUES (?, 'r', ?, 'completed', ?)", responses),
        )
        conn.execute("BEGIN")
        for sql, values in inserts:
            for value in values:
                conn.execute(sql, value)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")


def timed(where: tuple[str, Path], sql: str, params: tuple, repeat: int) -> float:
    with raw_connection(*where) as conn:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            conn.execute(sql, params).fetchall()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def insert_cost(where: tuple[str, Path], tag: str, rows: int = 10_000) -> float:
    """Microseconds per ledger row insert (the per-request write the requester index adds to), 100 a transaction."""
    with raw_connection(*where) as conn:
        start = time.perf_counter()
        for first in range(0, rows, 100):
            conn.execute("BEGIN")
            for i in range(first, first + 100):
                conn.execute("INSERT INTO openai_compat_runs (request_id, route, status, requester, started_at)"
                             " VALUES (?, 'chat_completions', 'finished', '', '2026-01-01T00:00:00.000Z')",
                             (f"req_{tag}_{i:06d}",))
            conn.execute("COMMIT")
        return (time.perf_counter() - start) / rows * 1e6


def insert_costs(where: tuple[str, Path], rounds: int = 6) -> tuple[float, float]:
    """Median µs per ledger insert with and without the requester index (dropped on entry).

    The order flips each round (without, with, with, without, ...) so a drift of the machine or the
    table's growth does not land on one side.
    """
    costs: dict[bool, list[float]] = {True: [], False: []}
    indexed = False
    for n in range(rounds):
        for want in ((False, True) if n % 2 == 0 else (True, False)):
            if want != indexed:
                with raw_connection(*where) as conn:
                    conn.execute("CREATE INDEX openai_compat_runs_requester ON openai_compat_runs (requester, id)"
                                 " WHERE requester <> ''" if want else "DROP INDEX openai_compat_runs_requester")
                indexed = want
            costs[want].append(insert_cost(where, f"{want}{n}"))
    return statistics.median(costs[True]), statistics.median(costs[False])


def drop_new_indexes(where: tuple[str, Path]) -> None:
    with raw_connection(*where) as conn:
        for name in NEW_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("ANALYZE")


async def measure(backend: str, url: str, data: Path, rows: int, repeat: int) -> list[tuple[str, str, float, float]]:
    db = database_for(url, data)
    await db.open(collect_migrations(create_plugin_manager("openai_compat")))
    await db.close()
    where: tuple[str, Any] = (url, data)
    fill(where, rows)
    found = await queries()
    after = {name: timed(where, sql, params, repeat) for name, (sql, params) in found.items()}
    drop_new_indexes(where)
    before = {name: timed(where, sql, params, repeat) for name, (sql, params) in found.items()}
    after[INSERT], before[INSERT] = insert_costs(where)  # last: its rows would grow the table the queries read
    return [(backend, name, before[name], after[name]) for name in after]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += asyncio.run(measure("sqlite", "", Path(tmp) / "lite", args.rows, args.repeat))
        if not args.sqlite_only:
            from bmo.testing.postgres import PostgresCluster

            with PostgresCluster() as cluster:
                results += asyncio.run(measure("postgresql", cluster.new_store_url(), Path(tmp) / "pg",
                                               args.rows, args.repeat))
    print(f"{args.rows} rows per table, median of {args.repeat} runs (ms)\n")
    print("| backend | query | without the indexes | with them | ratio |")
    print("|---|---|---|---|---|")
    for backend, name, before, after in results:
        ratio = before / after
        print(f"| {backend} | {name} | {before:.3f} | {after:.3f} | {ratio:.0f}x |" if ratio >= 10
              else f"| {backend} | {name} | {before:.3f} | {after:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
