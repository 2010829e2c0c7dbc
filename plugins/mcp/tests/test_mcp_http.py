"""A streamable-HTTP MCP server (the reference "everything" server from npm) as a source of agent tools."""

from __future__ import annotations

import asyncio

from mcp_peers import run_agent, start_everything, stop_everything, tool_messages

from bmo.agent import coordinator_of, maybe_coordinator, run_outcomes
from bmo.agent.events import ToolStarted
from bmo.agent.messages import ChatMessage
from bmo.agent.run import RunPolicy
from bmo.testing.fake_upstream import reply, tool_call


async def test_tools_of_a_streamable_http_server_run_in_the_agent_loop(bmo, fake_upstream, everything_url):
    server = await bmo(f'[mcp.everything]\nurl = "{everything_url}"\ntool_class = "read"\n'
                       'headers = { X-Bmo-Test = "hello" }\n')
    row = (await server.host.posture())["mcp"]["servers"]["everything"]
    assert row["connected"] and row["transport"] == "streamable_http"
    assert {"mcp__everything__echo", "mcp__everything__get-sum"} <= set(row["tool_names"])

    fake_upstream.script(
        reply(tool_calls=[tool_call("mcp__everything__echo", {"message": "ping from BMO"}),
                          tool_call("mcp__everything__get-sum", {"a": 19, "b": 23})]),
        reply(tool_calls=[tool_call("mcp__everything__get-sum", {"a": "nineteen", "b": 23})]),
        reply("All done."),
    )
    result, _ = await run_agent(server.host, "echo and add")
    assert result.outcome == run_outcomes.FINAL_ANSWER

    echo, total = tool_messages(fake_upstream.chat_requests[1])
    assert "ping from BMO" in echo["content"]
    assert "42" in total["content"]
    # Arguments the server's schema rejects come back to the model as an error, not a crash.
    bad = tool_messages(fake_upstream.chat_requests[2])[-1]
    assert bad["content"].startswith("Error: ")
    row = (await server.host.posture())["mcp"]["servers"]["everything"]
    assert (row["calls"], row["failed_calls"]) == (3, 1)


async def test_an_http_server_that_is_not_there_is_reported_not_fatal(bmo, fake_upstream):
    from bmo.testing.harness import free_port

    server = await bmo(f'[mcp.gone]\nurl = "http://127.0.0.1:{free_port()}/mcp"\nstartup_timeout_s = 5\n')
    row = (await server.host.posture())["mcp"]["servers"]["gone"]
    assert row["state"] == "failed" and row["last_error"]
    assert maybe_coordinator(server.host) is not None


async def test_a_call_past_timeout_s_is_an_error_for_the_model_and_the_connection_stays_usable(bmo, fake_upstream,
                                                                                              everything_url):
    server = await bmo(f'[mcp.everything]\nurl = "{everything_url}"\ntool_class = "read"\ntimeout_s = 2\n')
    slow = tool_call("mcp__everything__trigger-long-running-operation", {"duration": 20, "steps": 2})
    fake_upstream.script(reply(tool_calls=[slow]), reply(tool_calls=[tool_call("mcp__everything__echo", {"message": "still here"})]),
                         reply("ok"))
    result, _ = await run_agent(server.host, "slow then echo")
    assert result.outcome == run_outcomes.FINAL_ANSWER
    [late] = tool_messages(fake_upstream.chat_requests[1])
    assert late["content"].startswith("Error: ") and "within 2 s" in late["content"]
    assert "still here" in tool_messages(fake_upstream.chat_requests[2])[-1]["content"]


async def test_cancelling_a_run_stops_its_mcp_call_at_once(bmo, fake_upstream, everything_url):
    server = await bmo(f'[mcp.everything]\nurl = "{everything_url}"\ntool_class = "read"\n')
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__everything__trigger-long-running-operation",
                                                     {"duration": 60, "steps": 2})]))
    co = coordinator_of(server.host)
    session = await co.create_session(model=co.default_model())
    run = await co.start_run(session, [ChatMessage(role="user", content="go")], policy=RunPolicy())
    async with asyncio.timeout(20):  # far below the operation's 60 s: the call did not run to its end
        async for event in run.events():
            if isinstance(event, ToolStarted):
                run.cancel("user stopped it")
        finished = await run.wait()
    assert finished.outcome == run_outcomes.CANCELLED
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__everything__echo", {"message": "after cancel"})]), reply("ok"))
    await run_agent(server.host, "echo")
    assert "after cancel" in tool_messages(fake_upstream.chat_requests[-1])[-1]["content"]


async def test_an_http_server_that_goes_away_fails_the_next_call_at_once_and_is_withdrawn(bmo, fake_upstream, tmp_path):
    proc, url = await asyncio.to_thread(start_everything, tmp_path / "everything.log")
    try:
        server = await bmo(f'[mcp.doomed]\nurl = "{url}"\ntool_class = "read"\n')
        assert (await server.host.posture())["mcp"]["servers"]["doomed"]["connected"]
    finally:
        await asyncio.to_thread(stop_everything, proc)
    echo = reply(tool_calls=[tool_call("mcp__doomed__echo", {"message": "anyone?"})])
    fake_upstream.script(echo, reply("It is gone."), reply("Nothing to call."))
    result, _ = await run_agent(server.host, "echo")
    assert result.outcome == run_outcomes.FINAL_ANSWER
    answer = tool_messages(fake_upstream.chat_requests[-1])[-1]["content"]
    assert answer.startswith("Error: MCP server 'doomed' is not connected: ")
    # From then on its tools are not offered, and BMO retries the server with backoff.
    await run_agent(server.host, "echo again")
    offered = {t["function"]["name"] for t in fake_upstream.chat_requests[-1].body.get("tools", [])}
    assert not any(name.startswith("mcp__doomed__") for name in offered)
    row = (await server.host.posture())["mcp"]["servers"]["doomed"]
    assert (row["state"], row["connected"], row["tools"]) == ("reconnecting", False, 0) and row["last_error"]
    assert row["reconnecting_since"]
