"""Closing the runs of a server that died on a shared store: once their lease expired, never before.

On a store only one server uses, start-up recovery closes every unfinished run (``bmo.agent.recovery``).
On a shared one a peer's unfinished runs may be running right now, so a run is closed only when its
session lease expired (or it has none): at the next claim of its session, or by the periodic sweep
every live server runs. Each owner of run tables (the agent core, the compat ledger) registers a
*closer*, ``closer(conn, runs) -> counts``, that closes ``runs`` ((run id, session id) pairs) as its
own crash-recovery rules say; all of them run in one writer job with the lease's removal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from bmo.agent import run_outcomes
from bmo.agent.events import RunFinished

CLOSERS_KEY = "cluster.run_closers"
INTERRUPTED = "interrupted: the server stopped"  # the words of bmo.agent.recovery and the ledger's recovery

# Unfinished runs whose session lease is gone or expired: their server stopped renewing.
STALE_RUNS = ("SELECT r.id, r.session_id FROM runs r LEFT JOIN session_leases l ON l.run_id = r.id"
              " WHERE r.outcome IS NULL AND (l.run_id IS NULL OR l.expires_at < ?)")

Closer = Callable[[Any, list[tuple[str, str]]], dict[str, int]]


def register_closer(host: Any, closer: Closer) -> None:
    """Add ``closer`` to the ones every take-over on this host runs (once per closer)."""
    closers = host.state.setdefault(CLOSERS_KEY, [])
    if closer not in closers:
        closers.append(closer)


def closers_of(host: Any) -> list[Closer]:
    return list(host.state.get(CLOSERS_KEY, ()))


def stale_runs(conn: Any, now: float, run_ids: list[str] | None = None) -> list[tuple[str, str]]:
    """The (run id, session id) of unfinished runs without a live lease; only of ``run_ids`` when given."""
    if run_ids is None:
        return [tuple(r) for r in conn.execute(STALE_RUNS, (now,)).fetchall()]
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    return [tuple(r) for r in conn.execute(f"{STALE_RUNS} AND r.id IN ({marks})", (now, *run_ids)).fetchall()]


def take_over(conn: Any, closers: list[Closer], runs: list[tuple[str, str]], now: float) -> dict[str, int]:
    """In a writer job: close ``runs`` with every closer, end their event logs, drop their expired leases."""
    counts: dict[str, int] = {"runs_taken_over": len(runs)}
    if not runs:
        return counts
    for closer in closers:
        for key, value in closer(conn, runs).items():
            counts[key] = counts.get(key, 0) + value
    finished = msgspec.json.encode(RunFinished(outcome=run_outcomes.ERROR, finish_reason="stop", error=INTERRUPTED,
                                               error_status=500)).decode()
    for run_id, _ in runs:
        # A follower elsewhere reads this as the run's end: the stream closes as a crash's does, not a hang.
        conn.execute("INSERT INTO run_event_log (run_id, seq, kind, event, at) SELECT ?, COALESCE(MAX(seq), 0) + 1,"
                     " 'run.finished', ?, ? FROM run_event_log WHERE run_id = ?", (run_id, finished, now, run_id))
        conn.execute("DELETE FROM session_leases WHERE run_id = ? AND expires_at < ?", (run_id, now))
    return counts


def sweep_job(closers: list[Closer], candidates: list[str]) -> Callable[[Any], dict[str, int]]:
    """The writer job of a sweep: the ``candidates`` a read found stale, checked again under the write lock."""
    def job(conn: Any) -> dict[str, int]:
        now = time.time()
        return take_over(conn, closers, stale_runs(conn, now, candidates), now)

    return job
