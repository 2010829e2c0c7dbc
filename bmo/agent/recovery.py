"""Start-up crash recovery of the agent core's tables: what a killed process left unfinished.

A run whose row has no outcome was cut off by a crash (kill -9, power loss): it is closed as
outcome ``error`` with ``error_status`` 500 and :data:`INTERRUPTED`. Its session's stored history
is repaired so it reads coherently: each tool call of that run without a result gets an
"interrupted" tool result right after its call, and user messages left without an answer (and
back-to-back user messages) are kept as they are and marked in one ``session.repaired`` audit
row. Everything happens in one writer job; a run is closed once, so a second start finds nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from bmo.agent import run_outcomes
from bmo.agent.messages import ChatMessage

INTERRUPTED = "interrupted: the server stopped"
TOOL_RESULT_TEXT = "Interrupted: the server stopped before this tool call finished."
REPAIRED_ACTION = "session.repaired"
ACTOR = "bmo"


def recover_job(conn: Any) -> dict[str, int]:
    """The writer job: close unfinished runs and repair their sessions; returns the counts."""
    return close_runs(conn, conn.execute("SELECT id, session_id FROM runs WHERE outcome IS NULL").fetchall())


def close_runs(conn: Any, runs: list[tuple[str, str]]) -> dict[str, int]:
    """Close ``runs`` ((run id, session id) pairs of a dead process) and repair their sessions, in a writer job.

    Also what a shared store's lease take-over does with a run whose holder stopped renewing (bmo.cluster).
    """
    now = time.time()
    counts = {"runs_closed": 0, "sessions_repaired": 0, "tool_results_added": 0, "user_messages_marked": 0}
    for run_id, _ in runs:
        conn.execute(
            "UPDATE runs SET outcome = ?, error = ?, error_status = 500, finished_at = ?,"
            " steps = (SELECT COUNT(*) FROM run_steps WHERE run_id = ?) WHERE id = ? AND outcome IS NULL",
            (run_outcomes.ERROR, INTERRUPTED, now, run_id, run_id))
        counts["runs_closed"] += 1
    by_session: dict[str, list[str]] = {}
    for run_id, session_id in runs:
        by_session.setdefault(session_id, []).append(run_id)
    for session_id, run_ids in by_session.items():
        added, marked = _repair_session(conn, session_id, set(run_ids), now)
        if added or marked:
            counts["sessions_repaired"] += 1
            counts["tool_results_added"] += added
            counts["user_messages_marked"] += marked
    return counts


def _repair_session(conn: Any, session_id: str, run_ids: set[str], now: float) -> tuple[int, int]:
    if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchall():
        return 0, 0  # an ephemeral session: its history lived in the dead process only
    added = _answer_dangling_calls(conn, session_id, run_ids, now)
    rows = conn.execute("SELECT seq, role FROM session_messages WHERE session_id = ? AND set_aside IS NULL"
                        " ORDER BY seq", (session_id,)).fetchall()  # the active history: forks set the rest aside
    already = _marked_seqs(conn, session_id)
    back_to_back = [seq for (prev_seq, prev_role), (seq, role) in zip(rows, rows[1:])
                    if role == "user" and prev_role == "user"]
    back_to_back = [s for s in back_to_back if s not in already]
    unanswered = []
    for seq, role in reversed(rows):  # the user turn the dead run never answered
        if role != "user":
            break
        if seq not in already and seq not in back_to_back:
            unanswered.append(seq)
    unanswered.reverse()
    if not (added or back_to_back or unanswered):
        return 0, 0
    detail = {"reason": INTERRUPTED, "runs": sorted(run_ids), "tool_results_added": added,
              "unanswered_user_seqs": unanswered, "back_to_back_user_seqs": back_to_back}
    conn.execute(
        "INSERT INTO operation_audit (time, actor, action, session_id, run_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (now, ACTOR, REPAIRED_ACTION, session_id, min(run_ids), json.dumps(detail)))
    return len(added), len(back_to_back) + len(unanswered)


def _answer_dangling_calls(conn: Any, session_id: str, run_ids: set[str], now: float) -> list[str]:
    """Insert an interrupted result after each of the dead runs' tool calls that has none; the call ids."""
    rows = conn.execute("SELECT seq, role, message, run_id FROM session_messages WHERE session_id = ?"
                        " AND set_aside IS NULL ORDER BY seq", (session_id,)).fetchall()
    answered = set()
    for _, role, body, _ in rows:
        if role == "tool":
            answered.add(msgspec.json.decode(body, type=ChatMessage).tool_call_id)
    inserts: list[tuple[int, list[str], str]] = []  # (seq to insert after, call ids, run id)
    for i, (seq, role, body, run_id) in enumerate(rows):
        if role != "assistant" or run_id not in run_ids:
            continue
        message = msgspec.json.decode(body, type=ChatMessage)
        missing = [c.id for c in message.tool_calls or [] if c.id not in answered]
        if not missing:
            continue
        after = seq
        for later_seq, later_role, _, _ in rows[i + 1:]:  # behind the results the call already has
            if later_role != "tool":
                break
            after = later_seq
        inserts.append((after, missing, run_id))
    ids: list[str] = []
    for after, missing, run_id in reversed(inserts):  # from the end, so earlier positions stay valid
        _make_room(conn, session_id, after, len(missing))
        for k, call_id in enumerate(missing, 1):
            body = msgspec.json.encode(ChatMessage(role="tool", tool_call_id=call_id, content=TOOL_RESULT_TEXT))
            conn.execute("INSERT INTO session_messages (session_id, seq, role, message, run_id, created_at)"
                         " VALUES (?, ?, 'tool', ?, ?, ?)",
                         (session_id, after + k, body.decode(), run_id, now))
        ids = missing + ids
    return ids


def _make_room(conn: Any, session_id: str, after: int, n: int) -> None:
    """Shift the messages after ``after`` by ``n`` (through negatives: the key must stay unique row by row)."""
    conn.execute("UPDATE session_messages SET seq = -(seq + ?) WHERE session_id = ? AND seq > ?", (n, session_id, after))
    conn.execute("UPDATE session_messages SET seq = -seq WHERE session_id = ? AND seq < 0", (session_id,))


def _marked_seqs(conn: Any, session_id: str) -> set[int]:
    marked: set[int] = set()
    for (detail,) in conn.execute("SELECT detail FROM operation_audit WHERE session_id = ? AND action = ?",
                                  (session_id, REPAIRED_ACTION)).fetchall():
        data = json.loads(detail)
        marked.update(data.get("unanswered_user_seqs", []))
        marked.update(data.get("back_to_back_user_seqs", []))
    return marked


async def recover(host: Any) -> dict[str, int] | None:
    """Run recovery through the host's writer; one ``agent.recovered`` trace record with the counts.

    Skipped (None, with a warning record) while another server holds the data dir.
    """
    from bmo.store.instance_lock import recover_if_sole

    return await recover_if_sole(host, "agent", recover_job, "runs_closed")
