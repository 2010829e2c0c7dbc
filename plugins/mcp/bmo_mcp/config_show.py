"""``bmo config show-mcp``: the configured MCP servers, secrets shown only as set/unset."""

from __future__ import annotations

import json

import msgspec

from bmo_mcp.config import SECTION

HELP = "Show [mcp.NAME]: the external MCP servers whose tools the agent gets (env and header values hidden)."
EXAMPLE = """[mcp.time]
command = "mcp-server-time"
args = ["--local-timezone", "UTC"]
enabled = true
tool_class = "network"
timeout_s = 60.0
startup_timeout_s = 20.0
ping_interval_s = 15.0
reconnect_max_s = 30.0
# tools are named mcp__time__<tool>
[mcp.docs]
url = "http://127.0.0.1:3001/mcp"
enabled = true
tool_class = "read"
timeout_s = 60.0
startup_timeout_s = 20.0
ping_interval_s = 15.0
reconnect_max_s = 30.0
[mcp.docs.headers]
Authorization = "set"
# tools are named mcp__docs__<tool>"""


def _public(options) -> dict:
    """One server's settings with env and header values reduced to set/unset; unused keys left out."""
    value = msgspec.to_builtins(options)
    value["env"] = {k: "set" if v else "unset" for k, v in options.env.items()}
    value["headers"] = {k: "set" if v else "unset" for k, v in options.headers.items()}
    stdio = bool(options.command)
    for key in (("url", "headers") if stdio else ("command", "args", "env", "cwd")):
        value.pop(key, None)
    for key in ("cwd", "env", "headers"):
        if key in value and not value[key]:
            del value[key]
    return value


def render(config, as_json: bool) -> str:
    servers = config.section(SECTION)
    tree = {name: _public(options) for name, options in servers.items()}
    if as_json:
        return json.dumps({SECTION: tree}, indent=2)
    if not tree:
        return "# no MCP servers configured; add one, e.g.\n# [mcp.time]\n# command = \"mcp-server-time\""
    from bmo.config.toml_text import to_toml

    out = []
    for name, value in tree.items():
        out.append(to_toml(value, f"{SECTION}.{name}").rstrip())
        out.append(f"# tools are named mcp__{name}__<tool>\n")
    return "\n".join(out).rstrip()
