"""End to end: the openai SDK asks BMO's OpenAI-compatible API, the agent calls a real MCP server on the way."""

from __future__ import annotations

import json

from mcp_peers import time_server_toml, tool_messages
from openai import AsyncOpenAI

from bmo.testing.fake_upstream import reply, tool_call

COMPAT = '[options.openai_compat]\nenabled = true\n'


async def test_a_chat_completion_answers_with_help_from_the_time_server(bmo, fake_upstream):
    server = await bmo(COMPAT + time_server_toml(extra='tool_class = "read"'), plugins="mcp,openai_compat")
    fake_upstream.script(
        reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})]),  # the ambiguity router
        reply(tool_calls=[tool_call("mcp__time__convert_time", {"source_timezone": "UTC", "time": "12:00",
                                                                  "target_timezone": "Asia/Kolkata"})]),
        reply("Noon in UTC is 17:30 in India."),
    )
    sdk = AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
    try:
        completion = await sdk.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": "What is 12:00 UTC in India?"}])
    finally:
        await sdk.close()
    assert completion.choices[0].message.content == "Noon in UTC is 17:30 in India."
    assert not completion.choices[0].message.tool_calls  # BMO's own tool calls never reach the client

    [answer] = tool_messages(fake_upstream.chat_requests[-1])
    converted = json.loads(answer["content"])
    assert converted["target"]["timezone"] == "Asia/Kolkata" and converted["target"]["datetime"].endswith("17:30:00+05:30")
    assert converted["time_difference"] == "+5.5h"
