"""Posture latency with N ledger rows: whole-table COUNT/GROUP BY (before issue 15) vs running counters (after).

    .venv/bin/python bench/posture_counters.py [rows]   # default 1,000,000
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import apsw

from bmo_openai_compat.migrations import MIGRATIONS
from bmo_openai_compat.observe.ledger_counts import LedgerCounts

OLD_QUERIES = (
    "SELECT COUNT(*) AS runs FROM openai_compat_runs",
    "SELECT COUNT(*) AS events FROM openai_compat_run_events",
    "SELECT route, COUNT(*) AS count FROM openai_compat_runs GROUP BY route ORDER BY route",
    "SELECT kind, COUNT(*) AS count FROM openai_compat_runs GROUP BY kind ORDER BY kind",
    "SELECT client_ua, COUNT(*) AS count FROM openai_compat_runs GROUP BY client_ua ORDER BY count DESC, client_ua LIMIT 5",
    "SELECT request_id, outcome, elapsed_ms, at FROM openai_compat_run_events WHERE terminal = 1 ORDER BY id DESC LIMIT 5",
)


class Db:
    """The two read calls LedgerCounts.seed uses, on a plain apsw connection."""

    def __init__(self, conn):
        self.conn = conn

    async def fetchone(self, sql, params=()):
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql, params=()):
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.getdescription()]
        return [dict(zip(names, row)) for row in cur]


def build(path: Path, rows: int) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    for _, sql in MIGRATIONS:
        conn.execute(sql)
    routes = ("chat_completions", "models_list", "runs_list")
    with conn:
        conn.executemany(
            "INSERT INTO openai_compat_runs (request_id, route, kind, status, outcome, http_status, session_id, run_id,"
            " model, stream, is_session_reuse, client_ua, requester, started_at, finished_at, elapsed_ms, error)"
            " VALUES (?, ?, 'chat', 'finished', 'final_answer', 200, '', '', 'm', 0, 0, ?, '', 't', 't', 5, NULL)",
            ((f"req_{i}", routes[i % 3], f"ua/{i % 50}") for i in range(rows)))
        conn.executemany(
            "INSERT INTO openai_compat_run_events (request_id, seq, event, at, elapsed_ms, terminal, outcome, detail)"
            " VALUES (?, 1, 'terminal', 't', 5, 1, 'final_answer', '{}')", ((f"req_{i}",) for i in range(rows)))
    return conn


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        conn = build(Path(tmp) / "ledger.sqlite3", rows)
        print(f"built {rows:,} runs + {rows:,} events in {time.perf_counter() - t0:.1f}s")
        before = timed(lambda: [list(conn.execute(q)) for q in OLD_QUERIES], 5)
        counts = LedgerCounts()
        t0 = time.perf_counter()
        asyncio.run(counts.seed(Db(conn)))
        seed_ms = (time.perf_counter() - t0) * 1000
        after = timed(counts.summary, 1000)
        print(f"before (COUNT/GROUP BY per call): median {statistics.median(before):.1f} ms, max {max(before):.1f} ms")
        print(f"after (counters): median {statistics.median(after) * 1000:.1f} us, max {max(after) * 1000:.1f} us")
        print(f"seed once at start-up: {seed_ms:.0f} ms")


if __name__ == "__main__":
    main()
