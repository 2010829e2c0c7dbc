"""The core tools on real files, processes and sockets: confinement, limits, failures as messages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bmo.agent import coordinator_of
from bmo.agent.config import AgentOptions, FileToolsOptions, WebFetchOptions
from bmo.agent.sandbox import SandboxOptions
from bmo.agent.tools import core_tools
from bmo.agent.tools.base import ToolContext, ToolFailed
from bmo.agent.tools.files import EditFile, ListDir, ReadFile, SearchFiles, WriteFile
from bmo.agent.tools.shell import RunShell
from bmo.agent.tools.web import WebFetch
from bmo.testing.fake_upstream import reply, tool_call


class _Config:
    def __init__(self, **sections):
        self.sections = {"agent": AgentOptions(), "agent.file_tools": FileToolsOptions(), "agent.sandbox": SandboxOptions(),
                         **sections}

    def section(self, path):
        return self.sections[path]


def ctx_for(workspace: Path, **sections) -> ToolContext:
    host = SimpleNamespace(config=_Config(**sections))
    return ToolContext(host=host, session_id="s", run_id="r", workspace=workspace)


def test_the_core_tool_names_and_classes_are_the_contract():
    tools = {t.name: t.tool_class for t in core_tools()}
    assert tools == {"read_file": "read", "list_dir": "read", "search_files": "read", "write_file": "write",
                     "edit_file": "write", "run_shell": "exec", "web_fetch": "network", "spawn_agent": "read"}
    for tool in core_tools():
        schema = tool.schema()["function"]
        assert schema["name"] == tool.name and schema["parameters"]["type"] == "object"


@pytest.mark.parametrize("path", ["../x", "sub/../../x", "/etc/passwd"])
async def test_paths_leaving_the_workspace_are_refused(workspace, path):
    (workspace / "sub").mkdir()
    with pytest.raises(ToolFailed, match="refused"):
        await ReadFile().run({"path": path}, ctx_for(workspace))


async def test_a_symlink_pointing_out_of_the_workspace_is_refused(workspace, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "linkdir").symlink_to(tmp_path)
    ctx = ctx_for(workspace)
    with pytest.raises(ToolFailed, match="symlink"):
        await ReadFile().run({"path": "link.txt"}, ctx)
    with pytest.raises(ToolFailed, match="refused"):
        await WriteFile().run({"path": "linkdir/evil.txt", "content": "x"}, ctx)
    assert not (tmp_path / "evil.txt").exists()
    assert "top secret" not in await SearchFiles().run({"pattern": "secret"}, ctx)


async def test_an_absolute_path_inside_the_workspace_is_fine(workspace):
    (workspace / "in.txt").write_text("inside")
    assert await ReadFile().run({"path": str(workspace / "in.txt")}, ctx_for(workspace)) == "inside"


async def test_refusals_reach_the_model_through_the_loop(agent, workspace, fake_upstream, tmp_path):
    (tmp_path / "x").write_text("SECRET-CONTENT")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "../x"}, id="a"),
                                           tool_call("read_file", {"path": str(tmp_path / "x")}, id="b")]),
                         reply("I may not read outside the workspace."))
    events = await bmo.run(session["id"], "read ../x")
    results = fake_upstream.chat_requests[1].messages[-2:]
    assert all(m["content"].startswith("Error: path") and "refused" in m["content"] for m in results)
    assert "SECRET-CONTENT" not in str(results)
    assert events[-1]["outcome"] == "final_answer"


async def test_read_file_truncates_past_the_size_limit(workspace):
    (workspace / "big.txt").write_text("a" * 100)
    out = await ReadFile().run({"path": "big.txt"}, ctx_for(workspace, **{"agent.file_tools": FileToolsOptions(max_read_bytes=10)}))
    assert out.startswith("a" * 10) and "truncated: showing 10 of 100 bytes" in out


async def test_list_dir_and_search_files(workspace):
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("def main():\n    return 42\n")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("def main")
    ctx = ctx_for(workspace)
    assert await ListDir().run({"path": "."}, ctx) == ".git/\nsrc/"
    assert await SearchFiles().run({"pattern": r"def \w+"}, ctx) == "src/main.py:1: def main():"
    assert await SearchFiles().run({"pattern": "nothing-here", "path": "src"}, ctx) == "no matches"
    with pytest.raises(ToolFailed, match="not a valid regular expression"):
        await SearchFiles().run({"pattern": "("}, ctx)


async def test_write_and_edit_files(workspace):
    ctx = ctx_for(workspace)
    assert "wrote 11 bytes" in await WriteFile().run({"path": "d/new.txt", "content": "hello world"}, ctx)
    await EditFile().run({"path": "d/new.txt", "old": "world", "new": "there"}, ctx)
    assert (workspace / "d" / "new.txt").read_text() == "hello there"
    with pytest.raises(ToolFailed, match="occurs 0 times"):
        await EditFile().run({"path": "d/new.txt", "old": "absent", "new": "x"}, ctx)
    small = ctx_for(workspace, **{"agent.file_tools": FileToolsOptions(max_write_bytes=4)})
    with pytest.raises(ToolFailed, match="max_write_bytes"):
        await WriteFile().run({"path": "big.txt", "content": "12345"}, small)


async def test_run_shell_reports_exit_code_and_bounds_output_and_time(workspace):
    ctx = ctx_for(workspace, agent=AgentOptions(max_tool_output_bytes=100, shell_max_timeout_s=0.5))
    assert await RunShell().run({"command": "echo hi; exit 3"}, ctx) == "exit code 3\nhi\n"
    out = await RunShell().run({"command": "yes | head -c 5000"}, ctx)
    assert "[output truncated: 4900 more bytes]" in out
    assert (await RunShell().run({"command": "pwd"}, ctx)).split("\n")[1] == str(workspace)
    # The model asks for a long timeout; the operator's maximum wins and the process is killed.
    with pytest.raises(ToolFailed, match="timed out after 0.5s"):
        await RunShell().run({"command": "echo started; sleep 30", "timeout_s": 600}, ctx)


async def test_web_fetch_gets_a_url_and_refuses_other_schemes(workspace, fake_upstream):
    ctx = ctx_for(workspace, **{"agent.web_fetch": WebFetchOptions(allow_hosts=["127.0.0.1"])})  # loopback is refused by default
    out = await WebFetch().run({"url": fake_upstream.base_url + "/models"}, ctx)
    assert out.startswith("HTTP 200 application/json") and "fake-model" in out
    with pytest.raises(ToolFailed, match="http"):
        await WebFetch().run({"url": "file:///etc/passwd"}, ctx)
    with pytest.raises(ToolFailed, match="failed"):
        await WebFetch().run({"url": "http://127.0.0.1:1/"}, ctx)


async def test_a_plugin_tool_is_offered_and_run(tmp_path, workspace, fake_upstream):
    from bmo.agent.tools.base import Tool
    from bmo.hookspecs import hookimpl
    from bmo.testing.fixtures import provider_toml
    from bmo.testing.harness import start_server

    class Shout(Tool):
        name = "shout"
        description = "Upper-case a text"
        parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

        async def run(self, args, ctx):
            return args["text"].upper()

    class ShoutPlugin:
        @hookimpl
        def bmo_tools(self, register):
            register(Shout())

    server = await start_server(tmp_path / "d", config_toml=f'[agent]\nworkspace = "{workspace}"\n' + provider_toml(fake_upstream),
                                load_plugins="", plugins=[ShoutPlugin()])
    try:
        from bmo.agent.coordinator import RunPolicy
        from bmo.agent.messages import ChatMessage

        co = coordinator_of(server.host)
        fake_upstream.script(reply(tool_calls=[tool_call("shout", {"text": "hey"})]), reply("done"))
        session = await co.create_session(model="fake/fake-model")
        run = await co.start_run(session, [ChatMessage(role="user", content="shout")], policy=RunPolicy())
        await run.wait()
        assert "shout" in {t["function"]["name"] for t in fake_upstream.chat_requests[0].body["tools"]}
        assert fake_upstream.chat_requests[1].messages[-1]["content"] == "HEY"
    finally:
        await server.stop()

