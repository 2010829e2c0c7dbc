"""The plugin's registration with the host: config, CLI, posture, and MCP connections for the server's life."""

from __future__ import annotations

from bmo.hookspecs import hookimpl
from bmo_mcp.config import SECTION, McpServerOptions

# Server-side modules load in the server-side hooks, so the CLI starts without importing the MCP SDK.


@hookimpl
def bmo_config_sections(register):
    register(SECTION, dict[str, McpServerOptions], dict)


@hookimpl
def bmo_config_show(register):
    from bmo_mcp import config_show

    register("mcp", config_show.render, help=config_show.HELP, example=config_show.EXAMPLE, live=True)


@hookimpl
def bmo_cli_commands(cli):
    from bmo_mcp.cli import mcp_group

    cli.add_command(mcp_group)


@hookimpl
def bmo_posture(register, host):
    from bmo_mcp.hub import hub_of

    def build(host):
        hub = hub_of(host)
        return hub.posture() if hub is not None else {"configured": 0, "connected": 0, "tools": 0,
                                                       "skipped_tools": [], "servers": {}}

    register("mcp", build)


# tryfirst: connect before the other plugins start, so MCP tools are in host.registry.tools
# (which the coordinator reads) before anything can start a run.
@hookimpl(tryfirst=True)
async def bmo_startup(host):
    from bmo_mcp.hub import STATE_KEY, McpHub

    hub = McpHub(host)
    host.state[STATE_KEY] = hub
    await hub.start()


@hookimpl
async def bmo_shutdown(host):
    from bmo_mcp.hub import hub_of

    hub = hub_of(host)
    if hub is not None:
        await hub.close()
