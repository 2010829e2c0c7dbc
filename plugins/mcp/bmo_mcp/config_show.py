"""``bmo config show-mcp``: the configured MCP servers, secrets shown only as set/unset."""

from __future__ import annotations

import json

import msgspec

from bmo_mcp.config import SECTION

HELP = ("Show [mcp.NAME]: the external MCP servers whose tools the agent gets (env and header values hidden), "
        "and, from a running server, each one's live state.")
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
# live: connected; 2 tools offered: mcp__time__convert_time, mcp__time__get_current_time; 12 calls, 0 failed
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
# tools are named mcp__docs__<tool>
# live: reconnecting since 2026-01-05T10:31:07Z (3 attempts); 0 tools offered; 4 calls, 1 failed
# last error: the MCP server docs closed the connection
# live state from http://127.0.0.1:9000"""


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


def render(config, as_json: bool, live=None) -> str:
    servers = config.section(SECTION)
    tree = {name: _public(options) for name, options in servers.items()}
    section = live.section(SECTION) if live is not None else None
    states = (section or {}).get("servers", {})
    if as_json:
        out: dict = {SECTION: tree}
        if live is not None:
            out["live"] = {"url": live.url, "servers": states} if section is not None else \
                {"url": live.url, "servers": None, "reason": live.reason or "the server has no mcp posture section"}
        return json.dumps(out, indent=2)
    if section is None:
        footer = f"# state not live: {live.reason}" if live is not None and live.reason else \
            "# state not live: the server has no mcp posture section"
    else:
        footer = f"# live state from {live.url}"
    if not tree:
        return "# no MCP servers configured; add one, e.g.\n# [mcp.time]\n# command = \"mcp-server-time\"\n" + footer
    from bmo.config.toml_text import to_toml

    out_lines = []
    for name, value in tree.items():
        out_lines.append(to_toml(value, f"{SECTION}.{name}").rstrip())
        out_lines.append(f"# tools are named mcp__{name}__<tool>")
        if section is not None:
            out_lines.extend(live_lines(states.get(name)))
        out_lines.append("")
    out_lines.append(footer)
    return "\n".join(out_lines).rstrip()


def live_lines(row: dict | None) -> list[str]:
    """One server's live state as comment lines (so the output stays valid TOML)."""
    if row is None:
        return ["# live: the running server does not know this server (its config differs from this one)"]
    state = row.get("state", "")
    if row.get("reconnecting_since"):
        state = f"reconnecting since {row['reconnecting_since']} ({row.get('reconnect_attempts', 0)} attempts)"
    elif not row.get("enabled", True):
        state = "disabled"
    lines = [f"# live: {state}; {row.get('tools', 0)} tools offered"
             + (f": {', '.join(row.get('tool_names', []))}" if row.get("tool_names") else "")
             + f"; {row.get('calls', 0)} calls, {row.get('failed_calls', 0)} failed"]
    if row.get("last_error"):
        lines.append(f"# last error: {row['last_error']}")
    return lines
