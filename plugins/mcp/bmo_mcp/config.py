"""The ``[mcp.NAME]`` tables: one external MCP server each."""

from __future__ import annotations

import re

import msgspec

from bmo.agent.tools.base import NETWORK, TOOL_CLASSES

SECTION = "mcp"

# The server name becomes part of every tool name, which OpenAI-style clients restrict.
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class McpServerOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to reach one MCP server: ``command`` (stdio child) or ``url`` (streamable HTTP)."""

    command: str = ""  # stdio: the executable to start
    args: list[str] = []
    env: dict[str, str] = {}  # added to a small safe base environment (PATH, HOME, ...)
    cwd: str = ""  # stdio: working directory of the child; empty: BMO's own
    url: str = ""  # streamable HTTP endpoint, e.g. "http://127.0.0.1:3001/mcp"
    headers: dict[str, str] = {}  # HTTP only, e.g. an Authorization header; never printed
    enabled: bool = True
    tool_class: str = NETWORK  # permission class of every tool of this server; "read" = trusted, no prompt
    timeout_s: float = 60.0  # one tool call
    startup_timeout_s: float = 20.0  # start/connect, handshake and tool listing
    ping_interval_s: float = 15.0  # an idle connection is pinged this often; no answer: it is dead
    reconnect_max_s: float = 30.0  # reconnect backoff doubles from 0.5 s up to this

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError("set exactly one of `command` (a stdio server) or `url` (a streamable HTTP server)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must start with http:// or https://, got {self.url!r}")
        if self.tool_class not in TOOL_CLASSES:
            raise ValueError(f"`tool_class` must be one of {', '.join(TOOL_CLASSES)}, got {self.tool_class!r}")
        if min(self.timeout_s, self.startup_timeout_s, self.ping_interval_s, self.reconnect_max_s) <= 0:
            raise ValueError("`timeout_s`, `startup_timeout_s`, `ping_interval_s` and `reconnect_max_s` must be "
                             "greater than 0")

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "streamable_http"


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name an MCP server, or None when it can."""
    if not _NAME.match(name):
        return f"[mcp.{name}]: a server name may only hold letters, digits, '_' and '-'"
    if "__" in name:
        return f"[mcp.{name}]: a server name may not contain '__' (it separates server and tool in tool names)"
    return None
