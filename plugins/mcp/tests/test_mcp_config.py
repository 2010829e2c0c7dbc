"""``[mcp.NAME]`` config: `bmo config show-mcp` hides secrets, mistakes are named, odd names are refused."""

from __future__ import annotations

import json
import tomllib

from click.testing import CliRunner

from bmo.cli.main import cli

CONFIG = """
[mcp.time]
command = "mcp-server-time"
args = ["--local-timezone", "UTC"]
env = { TZ_TOKEN = "s3cret-env" }
tool_class = "read"

[mcp.remote]
url = "https://mcp.example.com/mcp"
headers = { Authorization = "Bearer s3cret-header" }
timeout_s = 5
"""


def show(tmp_path, text: str, *args: str):
    path = tmp_path / "bmo.toml"
    path.write_text(text)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "BMO_LOAD_PLUGINS": None}
    return CliRunner(env=env).invoke(cli, ["config", "show-mcp", "--config", str(path), *args])


def test_show_mcp_prints_each_server_without_secret_values(tmp_path):
    result = show(tmp_path, CONFIG)
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    body = tomllib.loads(result.output)["mcp"]
    assert body["time"]["env"] == {"TZ_TOKEN": "set"} and body["time"]["tool_class"] == "read"
    assert body["remote"]["headers"] == {"Authorization": "set"} and body["remote"]["tool_class"] == "network"
    assert "url" not in body["time"] and "command" not in body["remote"]
    assert "# tools are named mcp__time__<tool>" in result.output

    as_json = json.loads(show(tmp_path, CONFIG, "--json").output)
    assert as_json["mcp"]["remote"]["timeout_s"] == 5 and "s3cret" not in json.dumps(as_json)


def test_a_server_with_both_command_and_url_is_a_config_error_naming_it(tmp_path):
    result = show(tmp_path, '[mcp.both]\ncommand = "x"\nurl = "http://127.0.0.1:1/mcp"\n')
    assert result.exit_code == 2
    assert "mcp.both" in result.output and "exactly one of `command`" in result.output


def test_an_unknown_tool_class_is_a_config_error(tmp_path):
    result = show(tmp_path, '[mcp.t]\ncommand = "x"\ntool_class = "admin"\n')
    assert result.exit_code == 2 and "tool_class" in result.output and "read, write, exec, network" in result.output


async def test_a_server_name_with_a_double_underscore_is_refused_not_fatal(bmo, fake_upstream):
    server = await bmo('[mcp.my__server]\ncommand = "mcp-server-time"\n')
    row = (await server.host.posture())["mcp"]["servers"]["my__server"]
    assert row["state"] == "not started" and "'__'" in row["last_error"]
