"""Start-up crash recovery: what a killed server left unfinished is closed and explained on the next start."""

from __future__ import annotations

import json
import time

from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall
from bmo.testing.fixtures import sqlite_only
from bmo.testing.harness import start_server
from bmo.testing.store_access import raw_connection

INTERRUPTED = "interrupted: the server stopped"


def _msg(**fields) -> str:
    import msgspec

    return msgspec.json.encode(ChatMessage(**fields)).decode()


def _call(call_id: str) -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name="run_shell", arguments='{"command": "true"}'))


# Start-up recovery runs only on a store no other server uses; a PostgreSQL store is shared by nature, and
# there a dead server's runs are closed when their leases expire (test_compat_shared_sessions, both backends).
SOLE_STORE = sqlite_only("start-up recovery is for a store no other live server may be using")


def seed_crash(store_url: str, data_dir) -> None:
    """What a kill -9 leaves: a ledger row running, runs without outcome, histories cut mid-turn."""
    now = time.time()
    with raw_connection(store_url, data_dir) as conn:
        _seed(conn, now)


def _seed(conn, now: float) -> None:
    conn.execute(
        "INSERT INTO openai_compat_runs (request_id, route, status, started_at) VALUES"
        " ('req-dead', 'chat_completions', 'running', '2026-01-01T00:00:00.000Z'),"
        " ('req-done', 'chat_completions', 'finished', '2026-01-01T00:00:00.000Z')")
    conn.execute("INSERT INTO openai_compat_responses (response_id, request_id, session_id, status, created_at,"
                 " response) VALUES ('resp_dead', 'req-dead', 's-tools', 'in_progress', 0,"
                 " '{\"id\": \"resp_dead\", \"status\": \"in_progress\"}')")
    conn.execute("INSERT INTO openai_compat_run_events (request_id, seq, event, at, elapsed_ms) VALUES"
                 " ('req-dead', 1, 'received', '2026-01-01T00:00:00.000Z', 0),"
                 " ('req-dead', 2, 'agent_started', '2026-01-01T00:00:00.200Z', 200)")
    for sid in ("s-tools", "s-user"):
        conn.execute("INSERT INTO sessions (id, model, created_at, updated_at) VALUES (?, 'fake/m', ?, ?)",
                     (sid, now, now))
    for rid, sid, outcome in (("run-tools", "s-tools", None), ("run-user", "s-user", None),
                              ("run-old", "s-user", "final_answer"), ("run-eph", "s-gone", None)):
        conn.execute("INSERT INTO runs (id, session_id, model, origin, permission_mode, started_at, outcome)"
                     " VALUES (?, ?, 'fake/m', 'openai_compat', 'auto_approve', ?, ?)", (rid, sid, now, outcome))
    rows = [
        ("s-tools", 1, "user", _msg(role="user", content="list files"), "run-tools"),
        ("s-tools", 2, "assistant", _msg(role="assistant", tool_calls=[_call("c1"), _call("c2")]), "run-tools"),
        ("s-tools", 3, "tool", _msg(role="tool", tool_call_id="c1", content="ok"), "run-tools"),
        ("s-user", 1, "user", _msg(role="user", content="hi"), "run-old"),
        ("s-user", 2, "assistant", _msg(role="assistant", content="hello"), "run-old"),
        ("s-user", 3, "user", _msg(role="user", content="first try"), "run-user"),
        ("s-user", 4, "user", _msg(role="user", content="second try"), "run-user"),
    ]
    for sid, seq, role, body, rid in rows:
        conn.execute("INSERT INTO session_messages (session_id, seq, role, message, run_id, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (sid, seq, role, body, rid, now))


def records(data_dir, msg: str) -> list[dict]:
    lines = (data_dir / "logs" / "bmo.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["msg"] == msg]


async def crashed_server(tmp_path, store_url: str):
    data = tmp_path / "data"
    first = await start_server(data, load_plugins="openai_compat", store_url=store_url)
    await first.stop()
    seed_crash(store_url, data)
    return data, await start_server(data, load_plugins="openai_compat", store_url=store_url)


@SOLE_STORE
async def test_ledger_rows_left_running_are_closed_as_interrupted_with_a_terminal_event(tmp_path, store_url):
    data, srv = await crashed_server(tmp_path, store_url)
    try:
        db = srv.host.db
        row = await db.fetchone("SELECT status, outcome, error, elapsed_ms, finished_at FROM openai_compat_runs"
                                " WHERE request_id = 'req-dead'")
        assert (row["status"], row["outcome"], row["error"], row["elapsed_ms"]) == (
            "interrupted", "error_500", INTERRUPTED, 200)
        assert row["finished_at"]
        events = await db.fetchall("SELECT seq, event, terminal, outcome, detail FROM openai_compat_run_events"
                                   " WHERE request_id = 'req-dead' ORDER BY seq")
        assert [(e["seq"], e["event"], e["terminal"], e["outcome"]) for e in events][-1] == (
            3, "terminal", 1, "error_500")
        assert json.loads(events[-1]["detail"])["error"] == INTERRUPTED
        assert (await db.fetchone("SELECT status FROM openai_compat_runs WHERE request_id = 'req-done'"))["status"] \
            == "finished"
    finally:
        await srv.stop()
    assert [r["ledger_rows_closed"] for r in records(data, "openai_compat.recovered")] == [0, 1]


@SOLE_STORE
async def test_a_stored_response_left_in_progress_is_failed_with_the_reason(tmp_path, store_url):
    _, srv = await crashed_server(tmp_path, store_url)
    try:
        row = await srv.host.db.fetchone("SELECT status, response FROM openai_compat_responses")
        body = json.loads(row["response"])
        assert (row["status"], body["status"], body["error"]) == (
            "failed", "failed", {"code": "server_error", "message": INTERRUPTED})
    finally:
        await srv.stop()


@SOLE_STORE
async def test_runs_without_outcome_are_closed_as_interrupted_errors(tmp_path, store_url):
    data, srv = await crashed_server(tmp_path, store_url)
    try:
        rows = await srv.host.db.fetchall("SELECT id, outcome, error, error_status FROM runs ORDER BY id")
        assert {r["id"]: (r["outcome"], r["error"], r["error_status"]) for r in rows} == {
            "run-eph": ("error", INTERRUPTED, 500), "run-old": ("final_answer", None, None),
            "run-tools": ("error", INTERRUPTED, 500), "run-user": ("error", INTERRUPTED, 500)}
    finally:
        await srv.stop()
    [_, second] = records(data, "agent.recovered")
    assert (second["runs_closed"], second["sessions_repaired"], second["tool_results_added"],
            second["user_messages_marked"]) == (3, 2, 1, 2)


@SOLE_STORE
async def test_a_tool_call_left_without_result_gets_an_interrupted_result_after_its_call(tmp_path, store_url):
    _, srv = await crashed_server(tmp_path, store_url)
    try:
        from bmo.agent.store import AgentStore

        history = await AgentStore(srv.host.db).messages("s-tools")
        assert [(m.role, m.tool_call_id) for m in history] == [
            ("user", None), ("assistant", None), ("tool", "c1"), ("tool", "c2")]
        assert "Interrupted" in history[-1].content
    finally:
        await srv.stop()


@SOLE_STORE
async def test_back_to_back_user_messages_are_kept_and_marked_in_the_audit(tmp_path, store_url):
    _, srv = await crashed_server(tmp_path, store_url)
    try:
        from bmo.agent.store import AgentStore

        store = AgentStore(srv.host.db)
        assert [m.content for m in await store.messages("s-user")] == ["hi", "hello", "first try", "second try"]
        [audit] = await store.audit_rows(session_id="s-user", action="session.repaired")
        assert audit["detail"]["back_to_back_user_seqs"] == [4]
        assert audit["detail"]["unanswered_user_seqs"] == [3]
        assert audit["detail"]["reason"] == INTERRUPTED
    finally:
        await srv.stop()


@SOLE_STORE
async def test_recovery_is_idempotent_a_second_start_changes_nothing(tmp_path, store_url):
    data, srv = await crashed_server(tmp_path, store_url)
    await srv.stop()
    again = await start_server(data, load_plugins="openai_compat", store_url=store_url)
    try:
        from bmo.agent.store import AgentStore

        store = AgentStore(again.host.db)
        assert len(await store.messages("s-tools")) == 4
        assert len(await store.audit_rows(action="session.repaired")) == 2
    finally:
        await again.stop()
    last = records(data, "agent.recovered")[-1]
    assert (last["runs_closed"], last["sessions_repaired"]) == (0, 0)
    assert records(data, "openai_compat.recovered")[-1]["ledger_rows_closed"] == 0


async def test_a_second_server_on_the_same_data_dir_leaves_the_first_ones_rows_alone(tmp_path):
    data = tmp_path / "data"
    first = await start_server(data, load_plugins="openai_compat")
    try:
        await first.host.db.write("INSERT INTO openai_compat_runs (request_id, route, status, started_at)"
                                  " VALUES ('req-live', 'chat_completions', 'running', '2026-01-01T00:00:00.000Z')")
        second = await start_server(data, load_plugins="openai_compat")
        await second.stop()
        row = await first.host.db.fetchone("SELECT status FROM openai_compat_runs WHERE request_id = 'req-live'")
        assert row["status"] == "running"
    finally:
        await first.stop()
    assert records(data, "openai_compat.recovery_skipped") and records(data, "agent.recovery_skipped")
