"""MCP servers that die are noticed (ping, process exit), their tools withdrawn, and reconnected with backoff."""

from __future__ import annotations

import asyncio
import os
import signal

from mcp_peers import marked_processes, run_agent, start_everything, stop_everything, time_server_toml, tool_messages

from bmo.testing.fake_upstream import reply, tool_call
from bmo.testing.harness import free_port

WATCH = "ping_interval_s = 0.5\nreconnect_max_s = 1\n"


def offered(request) -> set[str]:
    return {t["function"]["name"] for t in request.body.get("tools", [])}


async def wait_for_state(server, name: str, state: str, timeout: float) -> dict:
    row: dict = {}
    async with asyncio.timeout(timeout):
        while True:
            row = (await server.host.posture())["mcp"]["servers"][name]
            if row["state"] == state:
                return row
            await asyncio.sleep(0.1)


async def test_a_killed_stdio_server_is_withdrawn_from_the_next_request_and_comes_back(bmo, fake_upstream, mark):
    server = await bmo(time_server_toml(mark=mark, extra='tool_class = "read"\n' + WATCH.replace("reconnect_max_s = 1",
                                                                                             "reconnect_max_s = 30")))
    [pid] = marked_processes(mark)
    os.kill(pid, signal.SIGKILL)
    # Noticed without any call (the ping fails); reconnection starts after 0.5 s of backoff.
    row = await wait_for_state(server, "time", "reconnecting", 15)
    assert not row["connected"] and row["reconnecting_since"]
    fake_upstream.script(reply("no clock needed"))
    await run_agent(server.host, "anything")
    assert not any(n.startswith("mcp__time__") for n in offered(fake_upstream.chat_requests[-1]))

    row = await wait_for_state(server, "time", "connected", 30)
    assert row["tools"] == 2 and "reconnecting_since" not in row
    assert len(marked_processes(mark)) == 1 and marked_processes(mark) != [pid]
    fake_upstream.script(reply(tool_calls=[tool_call("mcp__time__get_current_time", {"timezone": "UTC"})]),
                         reply("back"))
    await run_agent(server.host, "time?")
    assert "mcp__time__get_current_time" in offered(fake_upstream.chat_requests[-2])
    assert '"timezone": "UTC"' in tool_messages(fake_upstream.chat_requests[-1])[-1]["content"]
    await asyncio.to_thread(server.host.records.flush)
    log = (server.host.log_dir / "bmo.jsonl").read_text()
    assert '"mcp.server.lost"' in log and '"mcp.server.reconnected"' in log


async def test_a_restarted_http_server_is_reconnected_within_the_backoff(bmo, fake_upstream, tmp_path):
    port = free_port()
    proc, url = await asyncio.to_thread(start_everything, tmp_path / "first.log", port)
    try:
        server = await bmo(f'[mcp.web]\nurl = "{url}"\ntool_class = "read"\n{WATCH}')
        assert (await server.host.posture())["mcp"]["servers"]["web"]["connected"]
    finally:
        await asyncio.to_thread(stop_everything, proc)
    row = await wait_for_state(server, "web", "reconnecting", 15)
    assert row["tools"] == 0 and row["last_error"]
    proc, _ = await asyncio.to_thread(start_everything, tmp_path / "second.log", port)
    try:
        row = await wait_for_state(server, "web", "connected", 30)  # backoff is capped at 1 s
        assert row["tools"] > 0
        fake_upstream.script(reply(tool_calls=[tool_call("mcp__web__echo", {"message": "again"})]), reply("ok"))
        await run_agent(server.host, "echo")
        assert "again" in tool_messages(fake_upstream.chat_requests[-1])[-1]["content"]
    finally:
        await asyncio.to_thread(stop_everything, proc)


async def test_a_missing_command_is_named_in_the_error(bmo, fake_upstream):
    server = await bmo('[mcp.nope]\ncommand = "bmo-no-such-mcp-server"\n')
    row = (await server.host.posture())["mcp"]["servers"]["nope"]
    assert row["state"] == "failed"
    assert "'bmo-no-such-mcp-server' was not found" in row["last_error"] and "[mcp.nope] command" in row["last_error"]
