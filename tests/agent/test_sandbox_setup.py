"""The sandbox as the operator sets it up and sees it: no bwrap, mode = "off", posture, config show, limits,
binds and the network switch."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
import openai
import pytest
import pytest_asyncio
from click.testing import CliRunner

from bmo.agent.config import AgentOptions
from bmo.agent.sandbox import SandboxOptions, SandboxUnavailable
from bmo.agent.tools.base import ToolContext
from bmo.agent.tools.shell import RunShell
from bmo.testing.harness import spawn_serve, start_server
from tests.agent.sandbox_support import (  # noqa: F401 - model_up is a fixture
    MODEL,
    PROVIDER_KEY,
    ShellModel,
    compat_config,
    model_up,
    offered_tools,
    require_bwrap,
    tool_results,
)

TOKEN = "setup-test-token"


@pytest_asyncio.fixture
async def compat(tmp_path, model_up):
    """``await compat(extra_toml)`` -> a running server under auto_approve; ``ask(server)`` runs one turn."""
    _, up = model_up
    servers = []

    async def start(extra_toml: str = ""):
        (tmp_path / "ws").mkdir(exist_ok=True)
        server = await start_server(tmp_path / f"data{len(servers)}", token=TOKEN, load_plugins="openai_compat",
                                    config_toml=compat_config(up, tmp_path / "ws", extra_toml))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def ask(server) -> str:
    client = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, timeout=60, max_retries=0)
    try:
        answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}])
    finally:
        await client.close()
    return answer.choices[0].message.content


async def posture(server) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.api + "/bmo/posture", headers=server.headers()) as resp:
            assert resp.status == 200
            return await resp.json()


async def test_without_bwrap_serve_starts_warns_once_and_run_shell_is_not_offered(tmp_path, model_up):
    model, up = model_up
    (tmp_path / "ws").mkdir()
    (tmp_path / "bin").mkdir()  # a PATH without bwrap
    config = tmp_path / "bmo.toml"
    config.write_text(compat_config(up, tmp_path / "ws"))
    serve = await asyncio.to_thread(
        spawn_serve, ["--config", str(config), "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
        env={"BMO_LOAD_PLUGINS": "openai_compat", "BMO_AUTH_TOKEN": TOKEN, "FAKE_PROVIDER_KEY": PROVIDER_KEY,
             "PATH": str(tmp_path / "bin")})
    try:
        assert serve.url, serve.stderr()
        model.shell("echo should-not-run")  # the model calls it anyway
        client = openai.AsyncOpenAI(base_url=serve.url + "/v1", api_key=TOKEN, timeout=60, max_retries=0)
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}])
        await client.close()
        tools = offered_tools(up)
        assert "read_file" in tools and "run_shell" not in tools
        assert "should-not-run" not in tool_results(up)["c0"] and "run_shell" in tool_results(up)["c0"]
        async with aiohttp.ClientSession() as http:
            async with http.get(serve.url + "/v1/bmo/posture", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                section = (await resp.json())["sandbox"]
        assert (section["mode"], section["bwrap_found"], section["exec_tools_offered"]) == ("bwrap", False, False)
    finally:
        assert serve.terminate() == 0
    warnings = [line for line in serve.stderr().splitlines() if "bubblewrap" in line]
    assert len(warnings) == 1, serve.stderr()
    assert "apt-get install bubblewrap" in warnings[0] and 'mode = "off"' in warnings[0]


async def test_run_shell_called_without_bwrap_is_refused_with_the_fix(workspace):
    sections = {"agent": AgentOptions(), "agent.sandbox": SandboxOptions()}
    host = SimpleNamespace(config=SimpleNamespace(section=sections.__getitem__), env={"PATH": "/nonexistent"})
    ctx = ToolContext(host=host, session_id="s", run_id="r", workspace=workspace)
    with pytest.raises(SandboxUnavailable, match="Debian package 'bubblewrap'.*mode = \"off\""):
        await RunShell().run({"command": "echo hi"}, ctx)


async def test_mode_off_is_warned_about_at_start_and_shown_in_the_posture(compat, capsys, tmp_path):
    server = await compat('[agent.sandbox]\nmode = "off"\n')
    assert 'mode = "off"' in capsys.readouterr().err
    section = (await posture(server))["sandbox"]
    assert section["mode"] == "off" and section["exec_tools_offered"] is True


async def test_the_posture_has_a_sandbox_section(compat):
    require_bwrap()
    section = (await posture(await compat()))["sandbox"]
    assert section["mode"] == "bwrap" and section["network"] == "off"
    assert section["bwrap_found"] is True and section["bwrap_path"].endswith("/bwrap")
    assert section["bwrap_version"][0].isdigit() and section["exec_tools_offered"] is True
    assert section["bwrap_error"] == ""  # the start-up test sandbox worked
    assert section["limits"]["cpu_time_s"] == SandboxOptions().cpu_time_s


async def test_a_bwrap_that_cannot_sandbox_is_warned_about_with_its_error(model_up, tmp_path, capsys):
    _, up = model_up
    fake = tmp_path / "bin" / "bwrap"  # as bwrap fails where user namespaces are refused
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "ws").mkdir()
    server = await start_server(tmp_path / "data", token=TOKEN, load_plugins="openai_compat",
                                config_toml=compat_config(up, tmp_path / "ws"), env={"PATH": str(fake.parent)})
    try:
        err = capsys.readouterr().err
        assert "bwrap cannot create a sandbox here (bwrap: setting up uid map: Permission denied)" in err
        assert 'mode = "off"' in err
        section = (await posture(server))["sandbox"]
        assert section["bwrap_found"] is True and "uid map" in section["bwrap_error"]
    finally:
        await server.stop()


def test_config_show_sandbox_prints_the_section(tmp_path, monkeypatch):
    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text('[agent.sandbox]\nnetwork = "on"\nfile_size_mb = 10\n'
                                       'env_set = { PATH = "/opt/bin:/usr/bin", GITHUB_TOKEN = "ghp-secret-9" }\n')
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "show-sandbox"])
    assert shown.exit_code == 0, shown.output
    assert "[agent.sandbox]" in shown.output and 'mode = "bwrap"' in shown.output and 'network = "on"' in shown.output
    as_json = json.loads(runner.invoke(cli, ["config", "show-sandbox", "--json"]).output)
    assert as_json["agent.sandbox"]["file_size_mb"] == 10
    assert as_json["agent.sandbox"]["env_set"] == {"PATH": "/opt/bin:/usr/bin", "GITHUB_TOKEN": "set"}
    assert "ghp-secret-9" not in shown.output
    assert "Example output" in runner.invoke(cli, ["config", "show-sandbox", "--help"]).output


def test_a_wrong_sandbox_mode_is_a_config_error(tmp_path, monkeypatch):
    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text('[agent.sandbox]\nmode = "docker"\n')
    shown = CliRunner().invoke(cli, ["config", "show-sandbox"])
    assert shown.exit_code != 0 and "agent.sandbox" in shown.output and "mode" in shown.output


async def test_limits_stop_a_process_that_writes_too_large_a_file(compat, model_up, tmp_path):
    require_bwrap()
    model, up = model_up
    server = await compat("[agent.sandbox]\nfile_size_mb = 1\n")
    model.shell("head -c 3000000 /dev/zero > big.bin; echo status=$?")
    await ask(server)
    assert "status=153" in tool_results(up)["c0"]  # 128 + SIGXFSZ
    assert (tmp_path / "ws" / "big.bin").stat().st_size == 1024 * 1024


async def test_max_processes_holds_a_fork_loop_even_for_root(compat, model_up):
    require_bwrap()
    model, up = model_up
    server = await compat("[agent.sandbox]\nmax_processes = 20\n")
    assert (await posture(server))["sandbox"]["limits"]["max_processes_by"] in ("cgroup", "rlimit")
    # dash gives up the subshell at the first refused fork; the count uses builtins only, as nothing can fork.
    model.shell("(for i in $(seq 60); do sleep 30 & done); n=0; for p in /proc/[0-9]*; do "
                'read -r c < $p/comm; [ "$c" = sleep ] && n=$((n+1)); done; echo "sleeps=$n"; exit 0')
    await ask(server)
    out = tool_results(up)["c0"]
    started = int(out.rsplit("sleeps=", 1)[1].split()[0])
    assert "Cannot fork" in out and 0 < started < 20


async def test_extra_binds_are_shown_read_only_or_read_write(compat, model_up, tmp_path):
    require_bwrap()
    model, up = model_up
    tools, cache = tmp_path / "tools", tmp_path / "cache"
    tools.mkdir()
    cache.mkdir()
    (tools / "tool.txt").write_text("a tool")
    server = await compat(f'[agent.sandbox]\nread_only_binds = ["{tools}"]\nread_write_binds = ["{cache}"]\n')
    model.shell(f"cat {tools}/tool.txt; echo x > {tools}/new; echo y > {cache}/new; echo end")
    await ask(server)
    out = tool_results(up)["c0"]
    assert "a tool" in out and "Read-only file system" in out
    assert not (tools / "new").exists() and (cache / "new").read_text() == "y\n"


async def test_a_relative_bind_is_refused_naming_the_key(compat, model_up):
    require_bwrap()
    model, up = model_up
    server = await compat('[agent.sandbox]\nread_only_binds = ["relative/dir"]\n')
    model.shell("echo hi")
    await ask(server)
    assert "read_only_binds" in tool_results(up)["c0"] and "absolute" in tool_results(up)["c0"]


async def test_network_on_shares_the_host_network(compat, model_up):
    require_bwrap()
    model, up = model_up
    accepted = []
    listener = await asyncio.start_server(lambda r, w: (accepted.append(1), w.close()), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        server = await compat('[agent.sandbox]\nnetwork = "on"\n')
        model.shell(f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED'")
        await ask(server)
    finally:
        listener.close()
        await listener.wait_closed()
    assert "CONNECTED" in tool_results(up)["c0"] and accepted == [1]
