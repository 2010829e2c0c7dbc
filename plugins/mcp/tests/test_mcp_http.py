"""A streamable-HTTP MCP server (the reference "everything" server from npm) as a source of agent tools."""

from __future__ import annotations

from bmo.agent import outcomes
from bmo.testing.fake_upstream import reply, tool_call
from mcp_peers import run_agent, tool_messages


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
    assert result.outcome == outcomes.FINAL_ANSWER

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
    assert server.host.coordinator is not None
