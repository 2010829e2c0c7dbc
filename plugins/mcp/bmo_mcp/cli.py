"""The ``bmo mcp`` command group."""

from __future__ import annotations

import click

from bmo.cli.options import config_option, load_or_exit


@click.group("mcp")
def mcp_group() -> None:
    """BMO and the Model Context Protocol."""


@mcp_group.command("serve")
@click.option("--url", envvar="BMO_URL", default=None, show_envvar=True,
              help="The running BMO server to ask, e.g. http://127.0.0.1:9000 "
                   "(default: [options.http_server] addr of the config).")
@click.option("--auth-token", envvar="BMO_AUTH_TOKEN", default=None, show_envvar=True,
              help="That server's bearer token.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the server's answer.")
@config_option
def serve(url, auth_token, timeout_s, config_files) -> None:
    """Serve BMO's tools to an MCP client over stdio (stdin/stdout).

    The tool bmo_get_openai_compat_status returns the JSON of the server's
    GET /v1/openai-compat/posture. Example client entry:

    \b
      {"mcpServers": {"bmo": {"command": "bmo", "args": ["mcp", "serve", "--url", "http://127.0.0.1:9000"],
                              "env": {"BMO_AUTH_TOKEN": "..."}}}}
    """
    import anyio

    from bmo_mcp.serve import serve_stdio

    if not url:
        from bmo.cli.main import plugin_manager

        addr = load_or_exit(plugin_manager(), config_files).section("options.http_server").addr
        url = f"http://{addr}"
    anyio.run(serve_stdio, url, auth_token or None, timeout_s)
