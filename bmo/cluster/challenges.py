"""Pending permission challenges in the shared store, so a native API on any server can answer one.

A challenge waits on the server whose run raised it (``bmo.agent.permissions``). On a shared store
that server also writes it to ``permission_challenges`` while it waits, and deletes it when it ends
(decided or timed out). Another server lists the challenges of a session whose run's lease is live,
and answers one by writing its decision into the row; the holder reads the decisions of its
challenges every second (with the lease's cancel requests) and resolves them as a local answer would,
so the decision's audit and records are written where the run goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def publish_job(pending: Any, holder: str) -> Callable[[Any], None]:
    """Write ``pending`` (a PendingPermission) as waiting on ``holder`` until its timeout."""
    body = _encode(pending.describe()).decode()

    def job(conn: Any) -> None:
        conn.execute("INSERT INTO permission_challenges (id, session_id, run_id, holder, challenge, expires_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (pending.id, pending.session_id, pending.run_id, holder, body,
                                                    pending.requested_at + pending.timeout_s))

    return job


def withdraw_job(permission_id: str) -> Callable[[Any], None]:
    def job(conn: Any) -> None:
        conn.execute("DELETE FROM permission_challenges WHERE id = ?", (permission_id,))

    return job


def waiting(conn: Any, session_id: str) -> list[dict]:
    """The undecided challenges of ``session_id`` whose run's lease is live (a read), as ``describe()`` gives."""
    now = time.time()
    rows = conn.execute(
        "SELECT c.challenge FROM permission_challenges c JOIN session_leases l ON l.run_id = c.run_id"
        " WHERE c.session_id = ? AND c.decision IS NULL AND c.expires_at >= ? AND l.expires_at >= ? ORDER BY c.id",
        (session_id, now, now)).fetchall()
    return [msgspec.json.decode(body) for (body,) in rows]


def decide_job(permission_id: str, session_id: str, decision: str, requester: str) -> Callable[[Any], bool]:
    """Write the answer to a challenge waiting elsewhere; False when it is no longer waiting (or unknown)."""
    def job(conn: Any) -> bool:
        now = time.time()
        return bool(conn.execute(
            "UPDATE permission_challenges SET decision = ?, decided_by = ? WHERE id = ? AND session_id = ?"
            " AND decision IS NULL AND expires_at >= ? AND EXISTS (SELECT 1 FROM session_leases l"
            " WHERE l.run_id = permission_challenges.run_id AND l.expires_at >= ?) RETURNING id",
            (decision, requester, permission_id, session_id, now, now)).fetchall())

    return job


def decisions(conn: Any, holder: str, ids: list[str]) -> list[tuple[str, str, str]]:
    """(id, decision, requester) of these challenges of ``holder`` another server answered (a read)."""
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return [tuple(r) for r in conn.execute(
        f"SELECT id, decision, decided_by FROM permission_challenges WHERE holder = ? AND id IN ({marks})"
        " AND decision IS NOT NULL", (holder, *ids)).fetchall()]


def prune_job(now: float) -> Callable[[Any], None]:
    """Delete challenges past their timeout (their holder died before withdrawing them)."""
    def job(conn: Any) -> None:
        conn.execute("DELETE FROM permission_challenges WHERE expires_at < ?", (now,))

    return job
