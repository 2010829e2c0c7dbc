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

from bmo.tracing.records import now_iso
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.ledger import Ledger

INTERRUPTED = "interrupted: the server stopped"
STATUS = "interrupted"


def recover_job(conn: Any) -> dict[str, int]:
    """The writer job: close every ``running`` row with a terminal event; returns the counts."""
    at = now_iso()
    rows = conn.execute("SELECT request_id FROM openai_compat_runs WHERE status = 'running'").fetchall()
    for (request_id,) in rows:
        seq, elapsed = conn.execute(
            "SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(elapsed_ms), 0) FROM openai_compat_run_events"
            " WHERE request_id = ?", (request_id,)).fetchall()[0]
        Ledger.insert_event(request_id, seq + 1, "terminal", at, elapsed,
                            {"error": INTERRUPTED, "interrupted": True},
                            terminal=True, outcome=outcomes.ERROR_500)(conn)
        Ledger.update_run(request_id, {"status": STATUS, "outcome": outcomes.ERROR_500, "finished_at": at,
                                       "elapsed_ms": elapsed, "error": INTERRUPTED})(conn)
    conn.execute(
        "UPDATE openai_compat_responses SET status = 'failed', response = json_set(response, '$.status', 'failed',"
        " '$.error', json_object('code', 'server_error', 'message', ?)) WHERE status = 'in_progress'", (INTERRUPTED,))
    return {"ledger_rows_closed": len(rows), "responses_failed": conn.changes()}


async def recover(host: Any) -> dict[str, int] | None:
    """Run recovery through the host's writer; one ``openai_compat.recovered`` trace record with the counts.

    Skipped (None, with a warning record) while another server holds the data dir.
    """
    from bmo.store.instance_lock import recover_if_sole

    return await recover_if_sole(host, "openai_compat", recover_job, "ledger_rows_closed")
