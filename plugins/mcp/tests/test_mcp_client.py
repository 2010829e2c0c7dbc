"""MCP servers' tools reach the agent as mcp__server__tool, under BMO's permission classes, over real stdio."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import datetime

import aiohttp
import pytest
from mcp_peers import marked_processes, run_agent, time_server_toml, tool_messages

from bmo.agent import run_outcomes
from bmo.agent.events import PermissionRequested
from bmo.agent.run import RunPolicy
from bmo.agent.tools.base import ToolFailed
from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.harness import free_port, spawn_serve


def offered_tools(request) -> dict[str, dict]:
    return {t["function"]["name"]: t["function"] for t in request.body.get("tools", [])}


async def test_the_real_time_server_answers_a_tool_call_the_model_makes(bmo, fake_upstream):
    server = await bmo(time_server_toml(extra='tool_class = "read"'))
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__time__get_current_time", {"timezone": "Asia/Tokyo"})]),
                         reply("It is morning in Tokyo."))
    result, events = await run_agent(server.host, "What time is it in Tokyo?")
    assert result.outcome == run_outcomes.FINAL_ANSWER and result.text == "It is morning in Tokyo."

    first, second = fake_upstream.chat_requests[:2]
    offered = offered_tools(first)
    assert offered["mcp__time__get_current_time"]["parameters"]["required"] == ["timezone"]
    assert "mcp__time__convert_time" in offered
    [answer] = tool_messages(second)
    data = json.loads(answer["content"])  # the server's own JSON text, unchanged
    assert data["timezone"] == "Asia/Tokyo"
    assert datetime.fromisoformat(data["datetime"]).utcoffset().total_seconds() == 9 * 3600
    assert not [e for e in events if isinstance(e, PermissionRequested)]  # read class: no challenge

    posture = (await server.host.posture())["mcp"]
    time_row = posture["servers"]["time"]
    assert (time_row["connected"], time_row["tools"], time_row["calls"], time_row["tool_class"]) == (True, 2, 1, "read")
    assert time_row["server_info"].startswith("mcp-time")


async def test_a_tool_error_from_the_server_goes_back_to_the_model_and_the_run_goes_on(bmo, fake_upstream):
    server = await bmo(time_server_toml(extra='tool_class = "read"'))
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__time__get_current_time", {"timezone": "Mars/Olympus"})]),
                         reply("That is not a time zone."))
    result, _ = await run_agent(server.host, "time on Mars?")
    assert result.outcome == run_outcomes.FINAL_ANSWER
    [answer] = tool_messages(fake_upstream.chat_requests[1])
    assert answer["content"].startswith("Error: ") and "Mars/Olympus" in answer["content"]
    row = (await server.host.posture())["mcp"]["servers"]["time"]
    assert (row["calls"], row["failed_calls"]) == (1, 1)


async def test_a_network_class_mcp_tool_is_not_called_when_policy_denies_it(bmo, fake_upstream):
    server = await bmo(time_server_toml(),  # tool_class defaults to network
                       agent_toml='[[agent.permission_rules]]\ntool = "mcp__time__*"\ndecision = "deny"\n')
    call = reply(tool_calls=[tool_call("mcp__time__get_current_time", {"timezone": "UTC"})])

    fake_upstream.script(call, reply("Not allowed."))
    await run_agent(server.host, "time?")
    [answer] = tool_messages(fake_upstream.chat_requests[1])
    assert answer["content"].startswith("Permission denied") and "denied (rule)" in answer["content"]

    fake_upstream.script(call, reply("Research mode cannot."))
    await run_agent(server.host, "time?", policy=RunPolicy(allowed_classes=frozenset({"read"})))
    [answer] = tool_messages(fake_upstream.chat_requests[3])
    assert "is a network tool and this run only allows read tools" in answer["content"]
    # Neither reached the server.
    assert (await server.host.posture())["mcp"]["servers"]["time"]["calls"] == 0


async def test_a_network_class_mcp_tool_asks_first_and_runs_once_allowed(bmo, fake_upstream):
    server = await bmo(time_server_toml())
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__time__get_current_time", {"timezone": "UTC"})]),
                         reply("Done."))
    _, events = await run_agent(server.host, "time?", decide="allow_once")
    [asked] = [e for e in events if isinstance(e, PermissionRequested)]
    assert (asked.tool, asked.tool_class) == ("mcp__time__get_current_time", "network")
    [answer] = tool_messages(fake_upstream.chat_requests[1])
    assert json.loads(answer["content"])["timezone"] == "UTC"
    assert (await server.host.posture())["mcp"]["servers"]["time"]["calls"] == 1


async def test_servers_that_fail_to_start_are_reported_and_bmo_serves_anyway(bmo, fake_upstream, mark):
    toml = (time_server_toml(mark=mark)
            + '[mcp.missing]\ncommand = "/nonexistent/bmo-no-such-mcp-server"\n'
            + f'[mcp.silent]\ncommand = "{sys.executable}"\nargs = ["-c", "import time; time.sleep(120)"]\n'
            + f'startup_timeout_s = 0.5\nenv = {{ BMO_MCP_TEST_MARK = "{mark}" }}\n'
            + '[mcp.off]\ncommand = "mcp-server-time"\nenabled = false\n')
    server = await bmo(toml)
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + "/v1/bmo/posture", headers=server.headers()) as response:
        assert response.status == 200
        posture = (await response.json())["mcp"]
    rows = posture["servers"]
    assert (posture["configured"], posture["connected"]) == (4, 1)
    assert rows["time"]["connected"] and rows["time"]["tools"] == 2
    assert rows["missing"]["state"] == "failed" and "No such file" in rows["missing"]["last_error"]
    assert rows["silent"]["state"] == "failed" and "did not start within 0.5 s" in rows["silent"]["last_error"]
    assert rows["off"]["state"] == "not started" and not rows["off"]["enabled"]
    assert not any(name.startswith(("mcp__missing", "mcp__silent", "mcp__off")) for name in server.host.registry.tools)
    # The child that never answered was stopped; only the working server still runs.
    assert len(marked_processes(mark)) == 1

    await asyncio.to_thread(server.host.records.flush)
    records = [json.loads(line) for line in (server.host.log_dir / "bmo.jsonl").read_text().splitlines()]
    failed = {r["server"]: r["error"] for r in records if r["msg"] == "mcp.server.failed"}
    assert set(failed) == {"missing", "silent"}


async def test_shutdown_closes_every_connection_and_leaves_no_child(bmo, fake_upstream, mark):
    server = await bmo(time_server_toml(mark=mark) + time_server_toml("clock", mark=mark))
    assert len(marked_processes(mark)) == 2
    await server.stop()
    assert marked_processes(mark) == []
    records = [json.loads(line) for line in (server.host.log_dir / "bmo.jsonl").read_text().splitlines()]
    assert {r["server"] for r in records if r["msg"] == "mcp.server.closed"} == {"time", "clock"}
    # A call after shutdown fails cleanly instead of hanging.
    tool = server.host.registry.tools["mcp__clock__get_current_time"]
    with pytest.raises(ToolFailed, match="is closed"):
        await tool.run({"timezone": "UTC"}, None)


def test_bmo_serve_stopped_by_sigterm_leaves_no_mcp_child(tmp_path, mark):
    config = tmp_path / "mcp.toml"
    config.write_text(time_server_toml(mark=mark))
    serve = spawn_serve(["--addr", f"127.0.0.1:{free_port()}", "--allow-no-auth", "--config", str(config)],
                        data_dir=tmp_path / "data", env={"BMO_LOAD_PLUGINS": "mcp"}, timeout=60)
    try:
        assert serve.url, serve.stderr()
        assert len(marked_processes(mark)) == 1
    finally:
        assert serve.terminate(signal.SIGTERM, timeout=30) == 0, serve.stderr()
    assert marked_processes(mark) == []
