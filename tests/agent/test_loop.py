"""The agent loop end to end: a real server, the native API, and the scripted fake upstream."""

from __future__ import annotations

import asyncio
import json

from bmo.agent import run_outcomes
from bmo.agent.coordinator import RunPolicy
from bmo.agent.events import PermissionDecided
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import reply, tool_call
from tests.agent.native_client import of_type


async def test_read_file_result_reaches_the_model_and_the_history_survives_a_restart(agent, workspace, fake_upstream, tmp_path):
    (workspace / "notes.txt").write_text("the launch code is 4321")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(
        reply("Let me look. ", tool_calls=[tool_call("read_file", {"path": "notes.txt"}, id="call_1")]),
        reply("The code is 4321.", chunks=4),
    )
    events = await bmo.run(session["id"], "What is the launch code?")

    tool_msg = fake_upstream.chat_requests[1].messages[-1]
    assert tool_msg == {"role": "tool", "tool_call_id": "call_1", "content": "the launch code is 4321"}
    finished = events[-1]
    assert finished["outcome"] == run_outcomes.FINAL_ANSWER
    assert finished["text"] == "Let me look. The code is 4321."
    assert "".join(e["text"] for e in of_type(events, "text.delta")) == finished["text"]
    assert [e["name"] for e in of_type(events, "tool.started")] == ["read_file"]
    assert of_type(events, "tool.finished")[0]["ok"] is True
    assert any("read_file(notes.txt)" in e["text"] for e in of_type(events, "reasoning.delta"))

    await bmo.stop()
    again = await agent(data_dir=tmp_path / "data")
    stored = await again.request("GET", f"/sessions/{session['id']}", status=200)
    roles = [m["role"] for m in stored["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert stored["messages"][1]["tool_calls"][0]["function"]["name"] == "read_file"
    assert stored["messages"][2]["content"] == "the launch code is 4321"
    assert stored["messages"][3]["content"] == "The code is 4321."
    assert stored["runs"][0]["outcome"] == run_outcomes.FINAL_ANSWER and stored["runs"][0]["steps"] == 2


async def test_a_history_replays_to_the_model_on_the_next_turn(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    await bmo.run(session["id"], "first question")
    await bmo.run(session["id"], "second question")
    sent = fake_upstream.chat_requests[-1].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "echo: first question"


async def test_independent_reads_all_run_and_answer_in_call_order(agent, workspace, fake_upstream):
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(
        reply(tool_calls=[tool_call("read_file", {"path": "a.txt"}, id="ca"), tool_call("read_file", {"path": "b.txt"}, id="cb"),
                          tool_call("list_dir", {"path": "."}, id="cl")]),
        reply("done"),
    )
    await bmo.run(session["id"], "read both")
    results = fake_upstream.chat_requests[1].messages[-3:]
    assert [(m["tool_call_id"], m["content"]) for m in results[:2]] == [("ca", "A"), ("cb", "B")]
    assert results[2]["tool_call_id"] == "cl" and "a.txt" in results[2]["content"]


async def test_a_failing_tool_reports_to_the_model_and_the_run_goes_on(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "missing.txt"})]),
                         reply(tool_calls=[tool_call("no_such_tool", {})]),
                         reply(tool_calls=[tool_call("read_file", "{not json")]),
                         reply("Sorry, that file does not exist."))
    events = await bmo.run(session["id"], "read missing.txt")
    sent = fake_upstream.chat_requests
    assert "does not exist" in sent[1].messages[-1]["content"]
    assert "no tool named 'no_such_tool'" in sent[2].messages[-1]["content"]
    assert "not a valid JSON object" in sent[3].messages[-1]["content"]
    assert [e["ok"] for e in of_type(events, "tool.finished")] == [False, False, False]
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER


async def test_identical_tool_calls_past_the_limit_stop_the_run(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent("[agent.loop_detection]\nmax_identical_calls = 2\n")
    session = await bmo.create_session()
    same = lambda: reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})])  # noqa: E731
    fake_upstream.script(same(), same(), same(), reply("never reached"))
    events = await bmo.run(session["id"], "loop please")
    finished = events[-1]
    assert finished["outcome"] == run_outcomes.LOOP_DETECTED
    assert "same arguments 3 times in a row" in finished["text"] and "max_identical_calls" in finished["error"]
    assert len(fake_upstream.chat_requests) == 3
    assert len(of_type(events, "tool.finished")) == 2  # the third identical call never ran
    # The history stays valid: the refused call got a result.
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert history[-1].role == "tool" and "loop detected" in history[-1].content


async def test_a_repeated_call_with_other_work_in_between_is_not_a_loop(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent("[agent.loop_detection]\nmax_identical_calls = 1\n")
    session = await bmo.create_session()
    read_x = lambda: reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})])  # noqa: E731
    fake_upstream.script(read_x(), reply(tool_calls=[tool_call("list_dir", {"path": "."})]), read_x(), reply("fine"))
    events = await bmo.run(session["id"], "read, look around, read again")
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER and events[-1]["text"] == "fine"


async def test_length_stops_are_continued_and_stitched_into_one_answer(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("The first half, ", finish_reason="length"),
                         reply("the second half, ", finish_reason="length"),
                         reply("and the end."))
    events = await bmo.run(session["id"], "tell me a long story")
    assert events[-1]["text"] == "The first half, the second half, and the end."
    assert events[-1]["finish_reason"] == "stop" and events[-1]["outcome"] == run_outcomes.FINAL_ANSWER
    continuation = fake_upstream.chat_requests[1].messages
    assert continuation[-2] == {"role": "assistant", "content": "The first half, "}
    assert "cut off" in continuation[-1]["content"]
    assert fake_upstream.chat_requests[2].messages[-2]["content"] == "The first half, the second half, "
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert [m.content for m in history] == ["tell me a long story", "The first half, the second half, and the end."]


async def test_continuations_are_bounded(agent, fake_upstream):
    bmo = await agent("[agent.length_recovery]\nmax_continuations = 1\n")
    session = await bmo.create_session()
    fake_upstream.script(reply("one ", finish_reason="length"), reply("two ", finish_reason="length"), reply("unused"))
    events = await bmo.run(session["id"], "go")
    assert events[-1]["text"] == "one two " and events[-1]["finish_reason"] == "length"
    assert fake_upstream.pending == 1


async def test_an_empty_answer_after_tools_gets_one_recovery_prompt_then_recovery_failed(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})]), reply(""), reply(""))
    events = await bmo.run(session["id"], "read x")
    assert events[-1]["outcome"] == run_outcomes.RECOVERY_FAILED
    assert "no answer after running tools" in events[-1]["error"] and events[-1]["text"] == events[-1]["error"]
    recovery = fake_upstream.chat_requests[2].messages[-1]
    assert recovery["role"] == "user" and "gave no answer" in recovery["content"]


async def test_the_recovery_prompt_can_bring_an_answer(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})]), reply(""), reply("It says x."))
    events = await bmo.run(session["id"], "read x")
    assert events[-1]["outcome"] == run_outcomes.FINAL_ANSWER and events[-1]["text"] == "It says x."
    history = await (await bmo.co.get_session(session["id"])).messages()
    assert all("gave no answer" not in (m.content or "") for m in history)  # the nudge is not history


async def test_max_steps_ends_the_run_with_its_outcome(agent, workspace, fake_upstream):
    (workspace / "x.txt").write_text("x")
    bmo = await agent("max_steps = 2\n")
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "x.txt"})]),
                         reply(tool_calls=[tool_call("list_dir", {"path": "."})]), reply("unused"))
    events = await bmo.run(session["id"], "go")
    assert events[-1]["outcome"] == run_outcomes.MAX_STEPS and "max_steps" in events[-1]["text"]


async def test_cancelling_mid_stream_stops_the_upstream_request_and_is_recorded(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("Thinking about it", chunks=2, stall=True))
    seen = []
    async with asyncio.timeout(20):
        async for event in bmo.events(session["id"], "take your time"):
            seen.append(event)
            if event["type"] == "text.delta" and len(of_type(seen, "text.delta")) == 2:
                cancel = await bmo.request("POST", f"/sessions/{session['id']}/cancel", {"reason": "operator said stop"},
                                           status=200)
                assert cancel["outcome"] == run_outcomes.CANCELLED
    assert await fake_upstream.wait_disconnect(timeout=10) == 1
    assert seen[-1]["type"] == "run.finished" and seen[-1]["outcome"] == run_outcomes.CANCELLED
    assert seen[-1]["text"] == "Thinking about it"
    run = (await bmo.co.store.run_rows(session["id"]))[0]
    assert run["outcome"] == run_outcomes.CANCELLED and run["cancel_reason"] == "operator said stop"
    audit = await bmo.co.store.audit_rows(session["id"], "run.cancelled")
    assert audit and audit[0]["detail"]["reason"] == "operator said stop"


async def test_a_client_that_disconnects_cancels_its_run(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("partial", stall=True))
    async with asyncio.timeout(20):
        async for event in bmo.events(session["id"], "hello"):
            if event["type"] == "text.delta":
                break  # leaving the context closes the connection
        await fake_upstream.wait_disconnect(timeout=15)
    run = bmo.co.get_run((await bmo.co.store.run_rows(session["id"]))[0]["id"])
    result = await asyncio.wait_for(run.wait(), 15)
    assert result.outcome == run_outcomes.CANCELLED and run.cancel_reason == "client disconnected"


async def test_cancel_stops_a_running_tool_and_answers_its_call(agent, fake_upstream, workspace):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("run_shell", {"command": "sleep 30; echo late > late.txt"}, id="sh")]))
    s = await bmo.co.get_session(session["id"])
    run = await bmo.co.start_run(s, [ChatMessage(role="user", content="sleep")], policy=RunPolicy(permission_mode="auto_approve"))
    async with asyncio.timeout(15):
        async for event in run.events():
            if isinstance(event, PermissionDecided):
                break  # the shell starts right after its permission
    run.cancel("test")
    result = await asyncio.wait_for(run.wait(), 15)
    assert result.outcome == run_outcomes.CANCELLED
    history = await s.messages()
    assert history[-1].role == "tool" and history[-1].tool_call_id == "sh" and "Cancelled" in history[-1].content
    assert not (workspace / "late.txt").exists()
    # The next turn is accepted: the dangling call was answered in the history.
    fake_upstream.script(reply("fine"))
    events = await bmo.run(session["id"], "next")
    assert events[-1]["text"] == "fine"


async def test_client_tools_end_the_turn_with_tool_calls_and_their_results_resume_the_run(agent, fake_upstream):
    bmo = await agent()
    co = bmo.co
    weather = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    session = await co.create_session(model="fake/fake-model", origin="openai_compat")
    fake_upstream.script(reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"}, id="w1")]), reply("It is sunny in Oslo."))
    policy = RunPolicy(permission_mode="auto_approve", origin="openai_compat")
    run = await co.start_run(session, [ChatMessage(role="user", content="weather in Oslo?")], policy=policy,
                             client_tools=[weather])
    first = await asyncio.wait_for(run.wait(), 15)
    assert first.outcome == run_outcomes.CLIENT_TOOL_CALLS and first.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in first.tool_calls] == [("w1", "get_weather", {"city": "Oslo"})]
    offered = {t["function"]["name"] for t in fake_upstream.chat_requests[0].body["tools"]}
    assert "get_weather" in offered and "read_file" in offered

    run2 = await co.start_run(session, [ChatMessage(role="tool", tool_call_id="w1", content="sunny")], policy=policy,
                              client_tools=[weather])
    second = await asyncio.wait_for(run2.wait(), 15)
    assert second.text == "It is sunny in Oslo."
    assert fake_upstream.chat_requests[1].messages[-1] == {"role": "tool", "content": "sunny", "tool_call_id": "w1"}


async def test_every_subscriber_sees_the_whole_event_sequence(agent, fake_upstream):
    bmo = await agent()
    co = bmo.co
    session = await co.create_session(model="fake/fake-model")
    fake_upstream.script(reply("abc", chunks=3))
    run = await co.start_run(session, [ChatMessage(role="user", content="x")], policy=RunPolicy())
    await asyncio.wait_for(run.wait(), 15)
    late = [e async for e in run.events()]
    assert [type(e).__name__ for e in late][-1] == "RunFinished"
    assert "".join(e.text for e in late if type(e).__name__ == "TextDelta") == "abc" == late[-1].text
    assert co.get_run(run.id) is run and co.active_run(session.id) is None


async def test_a_second_run_on_a_busy_session_is_refused(agent, fake_upstream):
    from bmo.agent.errors import SessionBusy

    bmo = await agent()
    co = bmo.co
    session = await co.create_session(model="fake/fake-model")
    fake_upstream.script(reply("slow", stall=True))
    run = await co.start_run(session, [ChatMessage(role="user", content="x")], policy=RunPolicy())
    try:
        await co.start_run(session, [ChatMessage(role="user", content="y")], policy=RunPolicy())
    except SessionBusy as exc:
        assert exc.run_id == run.id and exc.status == 409
    else:
        raise AssertionError("SessionBusy expected")
    busy = await bmo.request("POST", f"/sessions/{session.id}/messages", {"content": "z"}, status=409)
    assert busy["error"]["code"] == "session_busy"
    run.cancel()
    assert (await asyncio.wait_for(run.wait(), 15)).outcome == run_outcomes.CANCELLED


async def test_spawn_agent_runs_a_sub_task_with_its_own_budget(agent, workspace, fake_upstream):
    (workspace / "data.txt").write_text("42")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(
        reply(tool_calls=[tool_call("spawn_agent", {"task": "Read data.txt and report the number."}, id="sp")]),
        reply(tool_calls=[tool_call("read_file", {"path": "data.txt"})]),  # the sub-agent
        reply("The number is 42."),  # the sub-agent's answer
        reply("The sub-agent found 42."),
    )
    events = await bmo.run(session["id"], "delegate it")
    assert events[-1]["text"] == "The sub-agent found 42."
    sub_request = fake_upstream.chat_requests[1].messages
    assert sub_request[-1] == {"role": "user", "content": "Read data.txt and report the number."}
    assert fake_upstream.chat_requests[3].messages[-1] == {"role": "tool", "content": "The number is 42.", "tool_call_id": "sp"}
    assert any(e["text"].startswith("sub-agent running read_file") for e in of_type(events, "reasoning.delta"))


async def test_spawning_limits_depth_and_count(agent, fake_upstream):
    bmo = await agent("[agent.spawning]\nmax_depth = 1\nmax_per_run = 1\n")
    session = await bmo.create_session()
    fake_upstream.script(
        reply(tool_calls=[tool_call("spawn_agent", {"task": "t1"}, id="s1")]),
        reply(tool_calls=[tool_call("spawn_agent", {"task": "deeper"}, id="s2")]),  # sub-agent tries to nest
        reply("sub done"),
        reply(tool_calls=[tool_call("spawn_agent", {"task": "t2"}, id="s3")]),  # parent's second spawn
        reply("all done"),
    )
    events = await bmo.run(session["id"], "go")
    assert events[-1]["text"] == "all done"
    nested = fake_upstream.chat_requests[2].messages[-1]
    assert nested["tool_call_id"] == "s2" and "max_depth" in nested["content"]
    second = fake_upstream.chat_requests[4].messages[-1]
    assert second["tool_call_id"] == "s3" and "max_per_run" in second["content"]


async def test_stopping_the_server_cancels_active_runs_and_records_it(agent, fake_upstream, tmp_path):
    bmo = await agent()
    session = await bmo.co.create_session(model="fake/fake-model")
    fake_upstream.script(reply("never ends", stall=True))
    run = await bmo.co.start_run(session, [ChatMessage(role="user", content="x")], policy=RunPolicy())
    await fake_upstream.wait_requests(1, timeout=10)
    await bmo.stop()
    assert run.result.outcome == run_outcomes.CANCELLED
    await fake_upstream.wait_disconnect(timeout=10)
    again = await agent(data_dir=tmp_path / "data")
    row = (await again.co.store.run_rows(session.id))[0]
    assert (row["outcome"], row["cancel_reason"]) == (run_outcomes.CANCELLED, "shutdown")
