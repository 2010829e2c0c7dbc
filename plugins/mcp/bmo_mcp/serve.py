"""``bmo mcp serve``: BMO's posture as an MCP tool, over stdio.

The tool asks a running BMO server for ``GET /v1/openai-compat/posture`` and hands back
that JSON unchanged, so an MCP client sees the very snapshot the HTTP route, the agent
tool and the slash command show; nothing here computes posture itself.
"""

from __future__ import annotations

from typing import Any

import aiohttp

POSTURE_PATH = "/v1/openai-compat/posture"
TOOL_NAME = "bmo_get_openai_compat_status"
TOOL_DESCRIPTION = (
    "Live posture of a running BMO server's OpenAI-compatible API, as JSON: whether it is enabled, its tool, "
    "ambiguity and model-override policies, advertised models, run-ledger size, requests per route, the top "
    "client User-Agents, the last terminal outcomes and whether ledger writes are failing (degraded)."
)


class PostureUnavailable(Exception):
    """The BMO server could not give its posture; the message says why and what to do."""


def base_url(url: str) -> str:
    """``http://host:port`` from a server URL given with or without a trailing ``/v1``."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


async def fetch_posture(url: str, token: str | None, timeout_s: float = 10.0) -> str:
    """The posture route's JSON body, as the server sent it."""
    target = base_url(url) + POSTURE_PATH
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.get(target, headers=headers) as response:
            body = await response.text()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PostureUnavailable(
            f"the BMO server at {base_url(url)} is unreachable ({type(exc).__name__}: {exc}); start it with "
            "`bmo serve` or pass its address with --url") from None
    if status == 401:
        raise PostureUnavailable(
            f"the BMO server at {base_url(url)} answered 401: "
            + ("the auth token was refused; pass the server's token with --auth-token or BMO_AUTH_TOKEN" if token else
               "it needs a token; pass it with --auth-token or BMO_AUTH_TOKEN"))
    if status != 200:
        raise PostureUnavailable(f"the BMO server at {base_url(url)} answered {status} on {POSTURE_PATH}: "
                                 f"{_error_message(body)}")
    return body


def _error_message(body: str) -> str:
    import json

    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:300]


def build_server(url: str, token: str | None, timeout_s: float = 10.0) -> Any:
    """The MCP server with its one tool."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from bmo import __version__

    # WARNING: an expected tool error (server down, 401) need not be logged on every call.
    server = MCPServer(name="bmo", version=__version__, log_level="WARNING",
                       instructions="Read-only view of a running BMO server's OpenAI-compatible API posture.")

    async def bmo_get_openai_compat_status() -> str:
        try:
            return await fetch_posture(url, token, timeout_s)
        except PostureUnavailable as exc:
            raise ToolError(str(exc)) from None

    server.add_tool(bmo_get_openai_compat_status, name=TOOL_NAME, description=TOOL_DESCRIPTION,
                    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
                    structured_output=False)
    return server


async def serve_stdio(url: str, token: str | None, timeout_s: float = 10.0) -> None:
    await build_server(url, token, timeout_s).run_stdio_async()
