"""Start-up crash recovery of the run ledger: rows a killed process left ``running``.

Each such row becomes ``status = 'interrupted'``, outcome ``error_500``, ``error =``
:data:`INTERRUPTED`, ``finished_at`` the recovery time and ``elapsed_ms`` the last event's (the
latest moment known alive); its timeline gets a terminal event saying so. ``http_status`` stays
empty: no complete answer was sent. A stored response left ``in_progress`` (``/v1/responses``)
becomes ``failed`` with a ``server_error`` saying the same. One writer job; a closed row is not
found again.
"""

from __future__ import annotations

from typing import Any

import msgspec

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
    return close_rows(conn, [request_id for (request_id,) in rows], run_ids=ids)


def close_rows(conn: Any, request_ids: list[str], *, run_ids: list[str] | None = None) -> dict[str, int]:
    """Close these ``running`` rows, and the in-progress responses (of ``run_ids``; None: all), as interrupted."""
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
    return {"ledger_rows_closed": len(request_ids), "responses_failed": _fail_open_responses(conn, run_ids)}


def _fail_open_responses(conn: Any, run_ids: list[str] | None = None) -> int:
    """Mark stored responses left ``in_progress`` (of ``run_ids``; None: all) failed, in row and body; how many."""
    # The body is edited here, not with SQLite's json_set: one text for both backends.
    only = "" if run_ids is None else f" AND run_id IN ({', '.join('?' * len(run_ids))})"
    open_rows = conn.execute(
        "SELECT response_id, response FROM openai_compat_responses WHERE status = 'in_progress'" + only,
        tuple(run_ids or ())).fetchall()
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
