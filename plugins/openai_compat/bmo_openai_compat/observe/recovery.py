"""Start-up crash recovery of the run ledger: rows a killed process left ``running``.

Each such row becomes ``status = 'interrupted'``, outcome ``error_500``, ``error =``
:data:`INTERRUPTED`, ``finished_at`` the recovery time and ``elapsed_ms`` the last event's (the
latest moment known alive); its timeline gets a terminal event saying so. ``http_status`` stays
empty: no complete answer was sent. A stored response left ``in_progress`` (``/v1/responses``)
becomes ``failed`` with a ``server_error`` saying the same. One writer job; a closed row is not
found again.

On a shared store start-up recovery skips; the same closing happens to a dead server's rows later,
through ``bmo.cluster``: with its run when its lease expired (:func:`close_runs`), or, for rows that
are no run (a resume follower's own request, one that died before its run started, a
``/v1/completions`` call), once the process the row names (``holder``) has no live heartbeat
(:data:`DEAD_HOLDERS`, run by the keeper's sweep).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from bmo.cluster.liveness import HEARTBEAT_COLUMNS, HEARTBEAT_JOIN, Me, OrphanSweeper, holder_dead
from bmo.tracing.records import now_iso
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.ledger import Ledger

INTERRUPTED = "interrupted: the server stopped"
STATUS = "interrupted"


def recover_job(conn: Any) -> dict[str, int]:
    """The writer job: close every ``running`` row with a terminal event; returns the counts."""
    rows = conn.execute("SELECT request_id FROM openai_compat_runs WHERE status = 'running'").fetchall()
    return close_rows(conn, [request_id for (request_id,) in rows])


def close_runs(conn: Any, runs: list[tuple[str, str]]) -> dict[str, int]:
    """A shared store's take-over of runs whose holder died (bmo.cluster): their requests' rows, closed alike."""
    ids = [run_id for run_id, _ in runs]
    if not ids:
        return {"ledger_rows_closed": 0, "responses_failed": 0}
    marks = ", ".join("?" * len(ids))
    rows = conn.execute("SELECT request_id FROM openai_compat_runs WHERE status = 'running'"
                        f" AND request_id IN ({marks})", ids).fetchall()
    return close_rows(conn, [request_id for (request_id,) in rows], responses_of=("run_id", ids))


def dead_holder_rows(conn: Any, now: float, mine: Me) -> list[str]:
    """A shared store's ``running`` rows whose process died and that no run's lease covers (a read)."""
    rows = conn.execute(
        f"SELECT t.request_id, t.started_at, {HEARTBEAT_COLUMNS} FROM openai_compat_runs t {HEARTBEAT_JOIN}"
        " WHERE t.status = 'running' AND t.holder IS NOT NULL"
        # An unfinished run's row closes with its run once its lease expired (close_runs), not before.
        " AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.id = t.request_id AND x.outcome IS NULL)").fetchall()
    return [request_id for request_id, started, *beat in rows if holder_dead(_epoch(started), tuple(beat), now, mine)]


def close_dead_holder_rows(conn: Any, request_ids: list[str]) -> dict[str, int]:
    """Close rows :func:`dead_holder_rows` found, and their requests' in-progress responses, as recovery does."""
    if not request_ids:
        return {"ledger_rows_closed": 0, "responses_failed": 0}
    return close_rows(conn, request_ids, responses_of=("request_id", request_ids))


DEAD_HOLDERS = OrphanSweeper(dead_holder_rows, close_dead_holder_rows)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def close_rows(conn: Any, request_ids: list[str], *,
               responses_of: tuple[str, list[str]] | None = None) -> dict[str, int]:
    """Close these ``running`` rows, and the in-progress responses, as interrupted.

    ``responses_of`` (a column, ``run_id`` or ``request_id``, and its values) limits which responses; None: all.
    """
    at = now_iso()
    for request_id in request_ids:
        seq, elapsed = conn.execute(
            "SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(elapsed_ms), 0) FROM openai_compat_run_events"
            " WHERE request_id = ?", (request_id,)).fetchall()[0]
        Ledger.insert_event(request_id, seq + 1, "terminal", at, elapsed,
                            {"error": INTERRUPTED, "interrupted": True},
                            terminal=True, outcome=outcomes.ERROR_500)(conn)
        Ledger.update_run(request_id, {"status": STATUS, "outcome": outcomes.ERROR_500, "finished_at": at,
                                       "elapsed_ms": elapsed, "error": INTERRUPTED})(conn)
    return {"ledger_rows_closed": len(request_ids), "responses_failed": _fail_open_responses(conn, responses_of)}


def _fail_open_responses(conn: Any, responses_of: tuple[str, list[str]] | None = None) -> int:
    """Mark stored responses left ``in_progress`` (of ``responses_of``; None: all) failed, in row and body; how many."""
    # The body is edited here, not with SQLite's json_set: one text for both backends.
    column, keys = responses_of if responses_of is not None else ("", [])
    only = f" AND {column} IN ({', '.join('?' * len(keys))})" if column else ""
    open_rows = conn.execute(
        "SELECT response_id, response FROM openai_compat_responses WHERE status = 'in_progress'" + only,
        tuple(keys)).fetchall()
    for response_id, body in open_rows:
        response = msgspec.json.decode(body)
        response["status"] = "failed"
        response["error"] = {"code": "server_error", "message": INTERRUPTED}
        conn.execute("UPDATE openai_compat_responses SET status = 'failed', response = ? WHERE response_id = ?",
                     (msgspec.json.encode(response).decode(), response_id))
    return len(open_rows)


async def recover(host: Any) -> dict[str, int] | None:
    """Run recovery through the host's writer; one ``openai_compat.recovered`` trace record with the counts.

    Skipped (None, with a warning record) while another server holds the data dir.
    """
    from bmo.store.instance_lock import recover_if_sole

    return await recover_if_sole(host, "openai_compat", recover_job, "ledger_rows_closed")
