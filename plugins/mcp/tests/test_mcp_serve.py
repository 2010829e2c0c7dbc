"""``bmo mcp serve``: an MCP client sees the posture route's own JSON through bmo_get_openai_compat_status."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from mcp import Client, StdioServerParameters
from openai import AsyncOpenAI

from bmo.testing.harness import free_port
from bmo_mcp.serve import TOOL_NAME, build_server

COMPAT_ON = "[options.openai_compat]\nenabled = true\n"


async def get_posture(server) -> dict:
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + "/v1/openai-compat/posture", headers=server.headers()) as response:
        assert response.status == 200
        return await response.json()


async def test_bmo_mcp_serve_over_stdio_returns_the_same_snapshot_as_the_posture_route(bmo, fake_upstream):
    server = await bmo(COMPAT_ON, plugins="openai_compat")
    sdk = AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
    await sdk.models.list()
    await sdk.close()
    async with asyncio.timeout(10):  # the ledger row is written after the answer went out
        while not (await get_posture(server))["routes"]["models_list"]:  # last_outcomes shows chat routes only
            await asyncio.sleep(0.05)

    params = StdioServerParameters(command=sys.executable, args=["-m", "bmo", "mcp", "serve", "--url", server.url],
                                   env={"BMO_AUTH_TOKEN": server.token})
    async with asyncio.timeout(60), Client(params) as client:
        listing = await client.list_tools()
        [tool] = [t for t in listing.tools if t.name == TOOL_NAME]
        assert tool.annotations.read_only_hint is True
        result = await client.call_tool(TOOL_NAME, {})
    assert not result.is_error
    snapshot = json.loads(result.content[0].text)
    assert snapshot == await get_posture(server)
    assert snapshot["routes"]["models_list"] == 1 and snapshot["advertised_models"] == ["fake/fake-model"]


async def test_a_refused_token_and_an_unreachable_server_are_clear_tool_errors(bmo, fake_upstream):
    server = await bmo(COMPAT_ON, plugins="openai_compat")
    wrong_token = build_server(server.url, "not-the-token")
    nobody = build_server(f"http://127.0.0.1:{free_port()}", server.token)
    async with asyncio.timeout(30):
        async with Client(wrong_token) as client:
            refused = await client.call_tool(TOOL_NAME, {})
        async with Client(nobody) as client:
            unreachable = await client.call_tool(TOOL_NAME, {})
    assert refused.is_error and "answered 401" in refused.content[0].text
    assert "BMO_AUTH_TOKEN" in refused.content[0].text
    assert unreachable.is_error and "unreachable" in unreachable.content[0].text
