"""Every configured MCP server of one host: connected together at startup, closed at shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bmo_mcp.config import SECTION, McpServerOptions, check_name
from bmo_mcp.connection import CONNECTED, McpConnection
from bmo_mcp.tools import McpTool

STATE_KEY = "mcp"


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part, for display."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def hub_of(host) -> McpHub | None:
    return host.state.get(STATE_KEY)


class McpHub:
    """The host's MCP connections and the agent tools made from their tool lists."""

    def __init__(self, host: Any):
        self.host = host
        self.servers: dict[str, McpServerOptions] = dict(host.config.section(SECTION))
        self.connections: dict[str, McpConnection] = {}
        self.not_started: dict[str, str] = {}  # name -> why (disabled, bad name)
        self.tools: dict[str, McpTool] = {}
        self.skipped_tools: list[str] = []
        self.reconnecting: dict[str, dict[str, Any]] = {}  # name -> since, attempts (while a dead server is retried)
        self._reconnects: dict[str, asyncio.Task] = {}
        self._closing = False
        self._stderr_dir = host.log_dir / "mcp"

    async def start(self) -> None:
        """Connect every enabled server concurrently and register their tools; failures are recorded."""
        stderr_dir = self.host.log_dir / "mcp"
        if any(o.enabled and o.command for o in self.servers.values()):
            stderr_dir.mkdir(parents=True, exist_ok=True)
        for name, options in self.servers.items():
            problem = check_name(name)
            if problem:
                self.not_started[name] = problem
                self.host.emit("mcp.server.failed", "error", server=name, error=problem)
            elif not options.enabled:
                self.not_started[name] = f"disabled ([mcp.{name}] enabled = false)"
            else:
                self.connections[name] = self._connection(name, options)
        if self.connections:
            await asyncio.gather(*(c.start() for c in self.connections.values()))
        for connection in self.connections.values():
            if connection.state == CONNECTED:
                self._add_tools(connection)

    def _connection(self, name: str, options: McpServerOptions) -> McpConnection:
        from bmo import __version__

        return McpConnection(name, options, stderr_path=self._stderr_dir / f"{name}.stderr.log",
                             client_version=__version__, record=self.host.emit, on_lost=self._lost)

    def _lost(self, connection: McpConnection) -> None:
        """A connected server died: withdraw its tools from what runs are offered, and reconnect with backoff."""
        if self._closing or self.connections.get(connection.name) is not connection:
            return
        self._withdraw_tools(connection)
        self.reconnecting[connection.name] = {"since": time.time(), "attempts": 0, "error": connection.last_error}
        self.host.emit("mcp.server.lost", "warn", server=connection.name, transport=connection.options.transport,
                       error=connection.last_error)
        self._reconnects[connection.name] = asyncio.get_running_loop().create_task(
            self._reconnect(connection.name), name=f"bmo-mcp-reconnect-{connection.name}")

    async def _reconnect(self, name: str) -> None:
        options = self.servers[name]
        delay = 0.5
        while not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.reconnect_max_s)
            self.reconnecting[name]["attempts"] += 1
            connection = self._connection(name, options)
            old = self.connections[name]
            connection.calls, connection.failed_calls = old.calls, old.failed_calls  # the server's totals go on
            self.connections[name] = connection  # the posture shows this attempt's state and error
            if await connection.start() and not self._closing:
                self.reconnecting.pop(name, None)
                self._add_tools(connection)
                self.host.emit("mcp.server.reconnected", server=name, tools=len(connection.tools))
                return
            if connection.state != "failed" or self._closing:
                return

    def _withdraw_tools(self, connection: McpConnection) -> None:
        registry = self.host.registry.tools
        for name in [n for n, t in self.tools.items() if t.connection is connection]:
            del self.tools[name]
            if registry.get(name) is not None and getattr(registry[name], "connection", None) is connection:
                del registry[name]

    def _add_tools(self, connection: McpConnection) -> None:
        registry = self.host.registry.tools
        for spec in connection.tools:
            tool = McpTool(connection, spec)
            if tool.name in registry:  # two remote names that sanitise alike, or a clash with a BMO tool
                self.skipped_tools.append(tool.name)
                self.host.emit("mcp.tool.skipped", "warn", server=connection.name, tool=spec.name,
                               reason=f"the name {tool.name} is already taken")
                continue
            self.tools[tool.name] = tool
            registry[tool.name] = tool  # the coordinator reads this same dict

    async def close(self) -> None:
        """Stop reconnecting, then close every connection (stdio children stop); bounded per connection."""
        self._closing = True
        for task in self._reconnects.values():
            task.cancel()
        await asyncio.gather(*self._reconnects.values(), return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.connections.values()), return_exceptions=True)
        for connection in self.connections.values():
            self.host.emit("mcp.server.closed", server=connection.name, calls=connection.calls,
                           failed_calls=connection.failed_calls)

    def posture(self) -> dict[str, Any]:
        """The ``mcp`` posture section: each server, whether it is connected, its tools and last error."""
        servers: dict[str, Any] = {}
        for name, options in self.servers.items():
            connection = self.connections.get(name)
            row: dict[str, Any] = {
                "transport": options.transport,
                "target": _without_credentials(options.url) or options.command,
                "enabled": options.enabled,
                "tool_class": options.tool_class,
                "connected": connection is not None and connection.state == CONNECTED,
                "state": connection.state if connection else "not started",
                "tools": 0,
                "tool_names": [],
                "calls": 0,
                "failed_calls": 0,
                "last_error": self.not_started.get(name, "") if options.enabled else "",
            }
            retry = self.reconnecting.get(name)
            if retry is not None:
                row["reconnecting_since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(retry["since"]))
                row["reconnect_attempts"] = retry["attempts"]
            if connection is not None:
                names = sorted(t.name for t in self.tools.values() if t.connection is connection)
                row.update(tools=len(names), tool_names=names, calls=connection.calls,
                           failed_calls=connection.failed_calls, last_error=connection.last_error,
                           server_info=connection.server_info)
                if retry is not None:
                    row["state"] = "reconnecting"
                    row["last_error"] = connection.last_error or retry["error"]  # an attempt under way: why it was lost
            servers[name] = row
        return {
            "configured": len(self.servers),
            "connected": sum(1 for r in servers.values() if r["connected"]),
            "tools": len(self.tools),
            "skipped_tools": list(self.skipped_tools),
            "servers": servers,
        }
