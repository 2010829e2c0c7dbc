"""run_shell under tool_policy = "auto_approve", driven through the compat API by a scripted model:
what a hostile prompt can no longer read, write, reach or learn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.harness import start_server
from tests.agent.sandbox_support import MODEL, PROVIDER_KEY, ShellModel, compat_config, require_bwrap, tool_results

AUTH_TOKEN = "server-token-77c1"


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_bwrap()


@pytest_asyncio.fixture
async def shell(tmp_path, monkeypatch):
    """``await shell(*commands, extra_toml=..., data_dir=...)`` runs the commands in one turn; returns their results."""
    # The server's own environment holds the secrets, as under a real `bmo serve`.
    monkeypatch.setenv("BMO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("FAKE_PROVIDER_KEY", PROVIDER_KEY)
    model = ShellModel()
    up = await FakeUpstream(default=model).start()
    servers = []

    async def run(*commands: str, extra_toml: str = "", data_dir: Path | None = None) -> list[str]:
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        server = await start_server(data_dir or tmp_path / "data", config_toml=compat_config(up, workspace, extra_toml),
                                    token=AUTH_TOKEN, load_plugins="openai_compat",
                                    env={"BMO_AUTH_TOKEN": AUTH_TOKEN, "FAKE_PROVIDER_KEY": PROVIDER_KEY,
                                         "PATH": "/usr/local/bin:/usr/bin:/bin"})
        servers.append(server)
        model.shell(*commands)
        client = openai.AsyncOpenAI(base_url=server.api, api_key=AUTH_TOKEN, timeout=60, max_retries=0)
        try:
            answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}])
        finally:
            await client.close()
        assert answer.choices[0].message.content == "done"
        results = tool_results(up)
        return [results[f"c{i}"] for i in range(len(commands))]

    yield run
    for server in servers:
        await server.stop()
    await up.stop()


async def test_run_shell_cannot_read_etc_shadow(shell):
    [out] = await shell("cat /etc/shadow; ls -l /etc/shadow")
    assert "No such file" in out and "root:" not in out


async def test_run_shell_cannot_read_the_data_dir_or_the_config_file(shell, tmp_path):
    data = tmp_path / "data"
    [listing, config] = await shell(f"ls -la {data}", f"cat {data}/test-bmo.toml")
    assert (data / "bmo.sqlite3").exists() and (data / "test-bmo.toml").exists()
    assert "bmo.sqlite3" not in listing and "No such file" in listing
    assert "openai_compat" not in config and "No such file" in config


async def test_a_data_dir_inside_the_workspace_is_hidden(shell, tmp_path):
    data = tmp_path / "ws" / ".bmo-data"
    [listing, config] = await shell("ls -a .bmo-data", "cat .bmo-data/test-bmo.toml", data_dir=data)
    assert (data / "bmo.sqlite3").exists()
    assert "bmo.sqlite3" not in listing and "test-bmo.toml" not in listing
    assert "openai_compat" not in config


async def test_run_shell_cannot_read_a_directory_outside_the_workspace(shell, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE-SECRET-31f")
    [out, home] = await shell(f"cat {outside}/secret.txt; ls {outside}",
                              "ls -a /root ~root 2>&1; echo $HOME; ls -a $HOME")
    assert "OUTSIDE-SECRET-31f" not in out and "No such file" in out
    assert "No such file" in home and "/tmp/home" in home and ".pyenv" not in home


async def test_run_shell_cannot_write_outside_the_workspace(shell, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    host_tmp = Path("/tmp") / f"bmo-sandbox-escape-{tmp_path.name}"
    [out] = await shell(f"echo pwned > {outside}/new.txt; echo pwned > {host_tmp}; echo pwned > /usr/pwned; "
                        "echo inside > in.txt; echo wrote")
    assert not (outside / "new.txt").exists() and not host_tmp.exists() and not Path("/usr/pwned").exists()
    assert (tmp_path / "ws" / "in.txt").read_text() == "inside\n"
    assert "Read-only file system" in out


async def test_run_shell_cannot_connect_to_a_listener_on_loopback(shell):
    accepted = []
    listener = await asyncio.start_server(lambda r, w: (accepted.append(1), w.close()), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        # The listener works from the host: only the sandbox stands between the command and it.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await asyncio.sleep(0.1)
        assert accepted == [1]
        [out] = await shell(f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED' 2>&1; "
                            f"curl -sS -m 5 http://127.0.0.1:{port}/ 2>&1; echo end")
    finally:
        listener.close()
        await listener.wait_closed()
    assert "CONNECTED" not in out and accepted == [1]


async def test_run_shell_sees_no_auth_token_and_no_provider_key(shell):
    [out] = await shell("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'")
    assert AUTH_TOKEN not in out and PROVIDER_KEY not in out
    assert "BMO_" not in out and "FAKE_PROVIDER_KEY" not in out
    assert "PATH=/usr/local/sbin" in out and "HOME=/tmp/home" in out


async def test_operator_env_additions_pass_but_never_bmo_variables(shell, monkeypatch):
    monkeypatch.setenv("SANDBOX_EXTRA", "extra-value")
    extra = '[agent.sandbox]\nenv_allow = ["SANDBOX_EXTRA", "BMO_AUTH_TOKEN"]\nenv_set = {GREETING = "hi"}\n'
    [out] = await shell("env", extra_toml=extra)
    assert "GREETING=hi" in out and AUTH_TOKEN not in out


async def test_run_shell_sees_only_its_own_processes_and_no_capabilities(shell):
    [out] = await shell("ps -e -o pid=,comm=; hostname; grep CapEff /proc/self/status")
    commands = [line.split()[1] for line in out.splitlines()[1:] if line.strip() and line.split()[0].isdigit()]
    assert commands[0] == "bwrap" and "python" not in " ".join(commands) and len(commands) <= 5
    assert "bmo-sandbox" in out and "CapEff:\t0000000000000000" in out
