"""A long chat with large tool results: every upstream request stays under the window, system prompt and current turn intact."""

from __future__ import annotations

import json

import pytest
from compat_support import MODEL, is_router_call

from bmo.agent.context import SUMMARY_PROMPT
from bmo.testing.fake_upstream import reply, tool_call

pytestmark = pytest.mark.asyncio

WINDOW = 3000  # tokens; about 4 bytes each, so a request body's messages must stay under ~12 KB
CONTEXT = f"[agent.context]\ncontext_window = {WINDOW}\nreserve_tokens = 500\ntool_result_chars = 300\n"


def model_for_a_long_chat(body: dict):
    """The router says clear; a summary call gets a summary; a turn reads big.txt, then answers from it."""
    messages = body.get("messages") or []
    if any((t.get("function") or {}).get("name") == "bmo_route" for t in body.get("tools") or []):
        return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
    if messages and messages[0].get("content") == SUMMARY_PROMPT:
        return reply("Earlier the user asked numbered questions and BMO read big.txt for each.")
    if messages[-1]["role"] == "tool":
        return reply("answer to " + next(m["content"] for m in reversed(messages) if m["role"] == "user"))
    return reply(tool_calls=[tool_call("read_file", {"path": "big.txt"})])


async def test_a_hundred_turn_chat_stays_under_the_window_with_the_system_prompt_and_current_turn(start_compat):
    compat = await start_compat(ambiguity_action="code", extra_toml=CONTEXT)
    (compat.workspace / "big.txt").write_text("lorem ipsum dolor sit amet " * 300)  # ~8 KB a result
    compat.up.default = model_for_a_long_chat
    client = compat.aclient(max_retries=0)
    system = None
    for turn in range(100):
        asked = f"question {turn}"
        start = len(compat.up.chat_requests)
        done = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": asked}],
                                                    extra_headers={"X-BMO-Session-Id": "s-long"})
        assert done.choices[0].message.content == f"answer to {asked}"
        for request in compat.up.chat_requests[start:]:
            messages = request.body["messages"]
            if is_router_call(request.body) or messages[0]["content"] == SUMMARY_PROMPT:
                continue
            assert len(json.dumps(messages)) <= WINDOW * 4, (turn, len(json.dumps(messages)))
            system = system or messages[0]
            assert messages[0] == system and messages[0]["role"] == "system"  # the system prompt, whole
            users = [m for m in messages if m["role"] == "user"]
            assert users[-1]["content"] == asked  # the current turn is there
        last = compat.up.chat_requests[-1].body["messages"]
        assert last[-1]["role"] == "tool" and last[-2]["tool_calls"][0]["function"]["name"] == "read_file"
    summaries = [r for r in compat.up.chat_requests if r.body["messages"][0]["content"] == SUMMARY_PROMPT]
    assert summaries, "older turns were never summarised"
    await client.close()
