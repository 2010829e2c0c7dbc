"""Session leases: "this session has a run going" as a row in the shared store, not a dict in memory.

A run claims its session's lease in the same writer job that writes the run's row, so a refused claim
writes nothing. The holder renews all of its leases with one statement every third of the TTL, reads
their cancel requests every second, and deletes a lease when its run ends. A holder that dies stops
renewing: after ``[store] lease_ttl_s`` the lease has expired, and the next claim (or a sweep) takes
the session over and closes the dead run (``bmo.cluster.takeover``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bmo.agent.errors import SessionBusy
from bmo.cluster import takeover

# Only an expired lease is taken over; a live one makes the upsert update nothing and return no row.
CLAIM = ("INSERT INTO session_leases (session_id, run_id, request_id, holder, claimed_at, expires_at, cancel_requested)"
         " VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (session_id) DO UPDATE SET run_id = excluded.run_id,"
         " request_id = excluded.request_id, holder = excluded.holder, claimed_at = excluded.claimed_at,"
         " expires_at = excluded.expires_at, cancel_requested = NULL WHERE session_leases.expires_at < ?"
         " RETURNING run_id")


def claim_job(session_id: str, run_id: str, holder: str, ttl_s: float,
              closers: list[takeover.Closer]) -> Callable[[Any], None]:
    """A writer job claiming ``session_id`` for ``run_id``; raises SessionBusy while another run holds it."""
    def job(conn: Any) -> None:
        now = time.time()
        # A run whose holder let its lease expire is closed in this very job, before its session is reused.
        stale = [tuple(r) for r in conn.execute(
            "SELECT run_id, session_id FROM session_leases WHERE session_id = ? AND expires_at < ?",
            (session_id, now)).fetchall()]
        if not conn.execute(CLAIM, (session_id, run_id, run_id, holder, now, now + ttl_s, now)).fetchall():
            row = conn.execute("SELECT run_id FROM session_leases WHERE session_id = ?", (session_id,)).fetchall()
            raise SessionBusy(session_id, row[0][0] if row else "")
        if stale:
            takeover.take_over(conn, closers, takeover.stale_runs(conn, now, [stale[0][0]]), now)

    return job


def renew_job(holder: str, run_ids: list[str], ttl_s: float) -> Callable[[Any], list[tuple[str, str | None]]]:
    """One statement renewing these runs' leases; (run id, cancel request) of each lease still held."""
    def job(conn: Any) -> list[tuple[str, str | None]]:
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        return [tuple(r) for r in conn.execute(
            f"UPDATE session_leases SET expires_at = ? WHERE holder = ? AND run_id IN ({marks})"
            " RETURNING run_id, cancel_requested", (time.time() + ttl_s, holder, *run_ids)).fetchall()]

    return job


def release_job(holder: str, run_id: str) -> Callable[[Any], None]:
    def job(conn: Any) -> None:
        conn.execute("DELETE FROM session_leases WHERE run_id = ? AND holder = ?", (run_id, holder))

    return job


def request_cancel_job(session_id: str | None, run_id: str | None,
                       reason: str) -> Callable[[Any], tuple[str, str] | None]:
    """Mark a live lease (by session, by run, or both) as asked to cancel; its (run id, session id), or None."""
    def job(conn: Any) -> tuple[str, str] | None:
        where, params = ["expires_at >= ?"], [time.time()]
        for column, value in (("session_id", session_id), ("run_id", run_id)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        rows = conn.execute(f"UPDATE session_leases SET cancel_requested = ? WHERE {' AND '.join(where)}"
                            " RETURNING run_id, session_id", (reason or "cancelled", *params)).fetchall()
        return tuple(rows[0]) if rows else None

    return job


def unleased_job(session_id: str) -> Callable[[Any], None]:
    """A job raising SessionBusy while a run holds ``session_id``'s live lease (run first in a session's delete)."""
    def job(conn: Any) -> None:
        if (run_id := live_lease(conn, session_id)) is not None:
            raise SessionBusy(session_id, run_id)

    return job


def live_lease(conn: Any, session_id: str) -> str | None:
    """The run id holding ``session_id``'s unexpired lease, if any (a read)."""
    rows = conn.execute("SELECT run_id FROM session_leases WHERE session_id = ? AND expires_at >= ?",
                        (session_id, time.time())).fetchall()
    return rows[0][0] if rows else None


def cancel_requests(conn: Any, holder: str, run_ids: list[str]) -> list[tuple[str, str]]:
    """(run id, reason) of these held runs someone asked to cancel (a read, every second while runs go)."""
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    return [tuple(r) for r in conn.execute(
        f"SELECT run_id, cancel_requested FROM session_leases WHERE holder = ? AND run_id IN ({marks})"
        " AND cancel_requested IS NOT NULL", (holder, *run_ids)).fetchall()]
