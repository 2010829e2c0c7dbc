"""``client_tools``: the operator chooses which of the tools a client sends reach the model."""

from __future__ import annotations

import pytest
from compat_support import MODEL, is_router_call

pytestmark = pytest.mark.asyncio


def tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": name, "parameters": {"type": "object"}}}


CLIENT_TOOLS = [tool("search_web"), tool("search_images"), tool("get_weather"), tool("image_generation")]


def offered_client_tools(compat) -> set[str]:
    body = [r.body for r in compat.up.chat_requests if not is_router_call(r.body)][-1]
    names = {t["function"]["name"] for t in body.get("tools") or []}
    return names & {t["function"]["name"] for t in CLIENT_TOOLS}


@pytest.mark.parametrize(("setting", "offered"), [
    ("all", {"search_web", "search_images", "get_weather", "image_generation"}),
    ("none", set()),
    (["search_*", "get_weather"], {"search_web", "search_images", "get_weather"}),
])
async def test_only_the_configured_client_tools_reach_the_model(start_compat, setting, offered):
    compat = await start_compat(tool_policy="auto_approve", ambiguity_action="code", client_tools=setting)
    client = compat.aclient(max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], tools=CLIENT_TOOLS)
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert offered_client_tools(compat) == offered
    withheld = [e["detail"] for e in await compat.timeline(raw.headers["x-request-id"])
                if e["event"] == "client_tools_withheld"]
    assert (withheld[0]["count"] if withheld else 0) == len(CLIENT_TOOLS) - len(offered)
    await client.close()
