"""``bmo config show-mcp`` shows each server's live state from a running BMO next to its config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tomllib
from pathlib import Path

from mcp_peers import marked_processes, time_server_toml
from test_mcp_reconnect import wait_for_state

from bmo.testing.harness import free_port

BMO = str(Path(sys.executable).parent / "bmo")
WATCH = "ping_interval_s = 0.5\nreconnect_max_s = 1\n"


async def show_mcp(tmp_path, config: Path, *args: str) -> str:
    """Run the real ``bmo config show-mcp`` in a child process (the server answers on this loop meanwhile)."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cli-xdg")}
    for name in ("BMO_URL", "BMO_AUTH_TOKEN", "BMO_LOAD_PLUGINS"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(BMO, "config", "show-mcp", "--config", str(config), *args,
                                                cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    return out.decode()


def gated_time_server(tmp_path: Path, mark: str) -> tuple[str, Path]:
    """An ``[mcp.time]`` table whose command starts mcp-server-time only while the gate file exists."""
    toml = time_server_toml(mark=mark, extra=WATCH)  # skips when mcp-server-time is missing
    gate = tmp_path / "gate"
    gate.touch()
    script = tmp_path / "time-server.sh"
    script.write_text(f'#!/bin/sh\n[ -e "{gate}" ] || {{ echo "gate closed" >&2; exit 3; }}\n'
                      f'exec "{sys.executable}" -m mcp_server_time --local-timezone UTC\n')
    script.chmod(0o755)
    return toml.replace(f'command = "{sys.executable}"', f'command = "{script}"').replace(
        'args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]', "args = []"), gate


async def test_show_mcp_follows_a_killed_stdio_server_through_reconnecting_back_to_connected(bmo, mark, tmp_path):
    toml, gate = gated_time_server(tmp_path, mark)
    server = await bmo(toml)
    config = tmp_path / "data0" / "test-bmo.toml"
    live = ("--url", server.url, "--auth-token", server.token)

    text = await show_mcp(tmp_path, config, *live)
    assert tomllib.loads(text)["mcp"]["time"]["ping_interval_s"] == 0.5  # still the config, valid TOML
    assert "# live: connected; 2 tools offered: mcp__time__convert_time, mcp__time__get_current_time" in text
    assert f"# live state from {server.url}" in text

    [pid] = marked_processes(mark)
    gate.unlink()  # every reconnection attempt fails until the gate opens again
    os.kill(pid, signal.SIGKILL)
    await wait_for_state(server, "time", "reconnecting", 15)
    text = await show_mcp(tmp_path, config, *live)
    assert "# live: reconnecting since " in text and "0 tools offered" in text
    assert "# last error: " in text
    as_json = json.loads(await show_mcp(tmp_path, config, "--json", *live))
    row = as_json["live"]["servers"]["time"]
    assert row["state"] == "reconnecting" and row["reconnecting_since"] and row["tools"] == 0
    assert as_json["mcp"]["time"]["command"].endswith("time-server.sh") and row["last_error"]

    gate.touch()
    await wait_for_state(server, "time", "connected", 30)
    text = await show_mcp(tmp_path, config, *live)
    assert "# live: connected; 2 tools offered" in text and "reconnecting" not in text


async def test_show_mcp_without_a_server_prints_the_config_and_says_the_state_is_not_live(tmp_path):
    config = tmp_path / "bmo.toml"
    config.write_text('[mcp.time]\ncommand = "mcp-server-time"\n')
    closed = f"http://127.0.0.1:{free_port()}"
    text = await show_mcp(tmp_path, config, "--url", closed)
    assert tomllib.loads(text)["mcp"]["time"]["command"] == "mcp-server-time"
    assert f"# state not live: no BMO server answered at {closed}" in text and "# live:" not in text
    as_json = json.loads(await show_mcp(tmp_path, config, "--url", closed, "--json"))
    assert as_json["live"]["servers"] is None and "no BMO server answered" in as_json["live"]["reason"]


async def test_show_mcp_with_a_wrong_token_says_how_to_pass_the_right_one(bmo, tmp_path):
    server = await bmo('[mcp.time]\ncommand = "bmo-no-such-mcp-server"\n')
    text = await show_mcp(tmp_path, tmp_path / "data0" / "test-bmo.toml", "--url", server.url, "--auth-token", "wrong")
    assert "# state not live: the server at" in text and "refused the token (401)" in text
    assert "--auth-token or BMO_AUTH_TOKEN" in text
