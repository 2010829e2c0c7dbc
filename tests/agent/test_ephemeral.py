"""Ephemeral sessions live in memory only; their runs, tool executions and permission decisions are still recorded."""

from __future__ import annotations

import asyncio
import json

import apsw

from bmo.agent import run_outcomes
from bmo.agent.coordinator import RunPolicy
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import reply, tool_call

AUTO = RunPolicy(permission_mode="auto_approve", origin="openai_compat")


async def rows(bmo, sql: str, *params) -> list[dict]:
    return await bmo.host.db.fetchall(sql, params)


async def ask(bmo, session, text: str, policy: RunPolicy = AUTO, requester: str = ""):
    run = await bmo.co.start_run(session, [ChatMessage(role="user", content=text)], policy=policy, requester=requester)
    return run, await asyncio.wait_for(run.wait(), 20)


async def test_an_ephemeral_session_has_no_rows_but_its_tool_use_is_audited(agent, workspace, fake_upstream):
    bmo = await agent()
    session = await bmo.co.create_session(model=bmo.co.default_model(), requester="ann", ephemeral=True)
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "hi"}, id="w1")]),
                         reply("Written."))
    run, result = await ask(bmo, session, "write hi to out.txt", requester="ann")
    assert result.outcome == run_outcomes.FINAL_ANSWER and (workspace / "out.txt").read_text() == "hi"

    assert [m.role for m in await session.messages()] == ["user", "assistant", "tool", "assistant"]
    assert await bmo.co.get_session(session.id) is session
    assert await rows(bmo, "SELECT id FROM sessions") == []
    assert await rows(bmo, "SELECT seq FROM session_messages") == []
    # What matters for security and accounting is kept.
    decision = await rows(bmo, "SELECT * FROM permission_decisions WHERE session_id = ?", session.id)
    assert [(d["tool"], d["decided_by"], d["requester"]) for d in decision] == [("write_file", "policy", "ann")]
    actions = [a["action"] for a in await bmo.co.store.audit_rows(session.id)]
    assert actions == ["permission.decided", "tool.executed"]
    [row] = await bmo.co.store.run_rows(session.id)
    assert (row["id"], row["outcome"], row["steps"], row["origin"]) == (run.id, run_outcomes.FINAL_ANSWER, 2, "openai_compat")
    steps = await bmo.co.store.step_rows(run.id)
    assert [(s["step"], s["finish_reason"]) for s in steps] == [(1, "tool_calls"), (2, "stop")]
    assert all(s["finished_at"] >= s["started_at"] for s in steps)

    jobs = bmo.host.db.jobs_run
    assert await bmo.co.delete_session(session.id) is True
    assert bmo.host.db.jobs_run == jobs  # deleting it touched no table
    assert await bmo.co.get_session(session.id) is None
    assert [a["action"] for a in await bmo.co.store.audit_rows(session.id)] == actions


async def test_a_plain_ephemeral_answer_costs_two_writes_and_no_read(agent):
    bmo = await agent()
    reads = 0
    real_read = bmo.host.db.run_read

    async def counted(job):
        nonlocal reads
        reads += 1
        return await real_read(job)

    bmo.host.db.run_read = counted
    jobs = bmo.host.db.jobs_run
    session = await bmo.co.create_session(model=bmo.co.default_model(), ephemeral=True)
    _, result = await ask(bmo, session, "hello")
    await bmo.co.delete_session(session.id)
    assert result.text == "echo: hello"
    # One row for the step, one for the run (written at its end, after the step: both are in when it returns).
    assert (bmo.host.db.jobs_run - jobs, reads) == (2, 0)


async def test_ephemeral_sessions_are_listed_with_the_stored_ones_only_when_asked(agent):
    bmo = await agent()
    durable = await bmo.create_session(id="durable")
    ephemeral = await bmo.co.create_session(model=bmo.co.default_model(), ephemeral=True)
    listed = await bmo.request("GET", "/sessions?include_ephemeral=true", status=200)
    assert [s["id"] for s in listed["data"]] == [ephemeral.id, durable["id"]]
    assert listed["data"][0]["ephemeral"] is True
    assert [s["id"] for s in (await bmo.request("GET", "/sessions", status=200))["data"]] == [durable["id"]]
    after = await bmo.request("GET", f"/sessions?include_ephemeral=true&after={ephemeral.id}", status=200)
    assert [s["id"] for s in after["data"]] == [durable["id"]]
    shown = await bmo.request("GET", f"/sessions/{ephemeral.id}", status=200)
    assert shown["ephemeral"] is True and shown["messages"] == []
    await bmo.request("DELETE", f"/sessions/{ephemeral.id}", status=200)
    await bmo.request("GET", f"/sessions/{ephemeral.id}", status=404)


async def test_a_durable_session_still_keeps_its_history_and_audit(agent, tmp_path):
    bmo = await agent()
    session = await bmo.co.create_session(session_id="keep", model=bmo.co.default_model(), requester="bo")
    await ask(bmo, session, "remember me")
    assert [r["id"] for r in await rows(bmo, "SELECT id FROM sessions")] == ["keep"]
    assert [m.content for m in await bmo.co.store.messages("keep")] == ["remember me", "echo: remember me"]
    assert await bmo.co.delete_session("keep", requester="bo") is True
    assert [a["action"] for a in await bmo.co.store.audit_rows("keep")] == ["session.created", "session.deleted"]


async def test_a_step_row_that_fails_to_write_is_a_trace_record_not_a_failed_run(agent):
    bmo = await agent()
    saboteur = apsw.Connection(str(bmo.host.db.path))
    saboteur.setbusytimeout(5000)
    saboteur.execute("CREATE TRIGGER block_steps BEFORE INSERT ON run_steps BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    try:
        session = await bmo.co.create_session(model=bmo.co.default_model(), ephemeral=True)
        run, result = await ask(bmo, session, "hello")
    finally:
        saboteur.execute("DROP TRIGGER block_steps")
        saboteur.close()
    assert result.outcome == run_outcomes.FINAL_ANSWER and result.text == "echo: hello"
    assert await bmo.co.store.step_rows(run.id) == []
    await asyncio.to_thread(bmo.host.records.flush)
    records = [json.loads(line) for line in bmo.host.records.path.read_text().splitlines()]
    failed = [r for r in records if r.get("msg") == "agent.persist_failed" and r.get("run_id") == run.id]
    assert failed and failed[0]["write"] == "run_step" and "disk full" in failed[0]["error"]


async def test_a_sub_agent_session_is_forgotten_when_it_ends_and_its_run_names_the_parent(agent, workspace, fake_upstream):
    (workspace / "data.txt").write_text("7")
    bmo = await agent()
    fake_upstream.script(
        reply(tool_calls=[tool_call("spawn_agent", {"task": "Read data.txt."}, id="sp")]),
        reply(tool_calls=[tool_call("read_file", {"path": "data.txt"}, id="rd")]),  # the sub-agent's first step
        reply("It is 7."),  # the sub-agent's answer
        reply("The sub-agent says 7."),
    )
    session = await bmo.co.create_session(session_id="parent", model=bmo.co.default_model())
    run, result = await ask(bmo, session, "what is in data.txt? use a sub-agent")
    assert result.text == "The sub-agent says 7."
    children = await rows(bmo, "SELECT * FROM runs WHERE parent_run_id = ?", run.id)
    assert len(children) == 1 and children[0]["outcome"] == run_outcomes.FINAL_ANSWER and children[0]["origin"] == "spawn"
    assert await bmo.co.get_session(children[0]["session_id"]) is None
    assert [r["id"] for r in await rows(bmo, "SELECT id FROM sessions")] == ["parent"]
    assert [s.id for s in await bmo.co.list_sessions(include_ephemeral=True)] == ["parent"]
