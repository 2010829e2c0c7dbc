"""``tool_choice`` and ``parallel_tool_calls``, checked in what the upstream received."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL, is_router_call

from bmo.testing.fake_upstream import reply, tool_call

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def agent_calls(compat) -> list[dict]:
    return [r.body for r in compat.up.chat_requests if not is_router_call(r.body)]


def offered(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


async def test_tool_choice_none_offers_no_client_tool_and_answers_in_text(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply("No tools needed: sunny."))
    client = compat.aclient()
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Oslo?"}],
                                                  tools=[WEATHER_TOOL], tool_choice="none")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.tool_calls is None
    (sent,) = agent_calls(compat)
    assert "get_weather" not in offered(sent) and "tool_choice" not in sent
    await client.close()


async def test_tool_choice_required_is_sent_on_the_first_step_only(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                        reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"})]))
    client = compat.aclient()
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Oslo?"}],
                                                  tools=[WEATHER_TOOL], tool_choice="required")
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    first, second = agent_calls(compat)
    assert first["tool_choice"] == "required"
    assert "tool_choice" not in second  # back to the upstream's default, "auto"
    assert compat.model.router_calls == 0  # a forced tool is a program, not a question to clarify
    await client.close()


async def test_named_tool_choice_is_passed_upstream_and_ends_the_turn_with_that_call(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Rome"})]))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Rome?"}],
                                                  tools=[WEATHER_TOOL], tool_choice=NAMED, stream=True)
    chunks = [c async for c in stream]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    (sent,) = agent_calls(compat)
    assert sent["tool_choice"] == NAMED and "get_weather" in offered(sent)
    await client.close()


async def test_parallel_tool_calls_is_passed_through(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply("fine"))
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                         tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert agent_calls(compat)[-1]["parallel_tool_calls"] is False
    await client.close()


async def test_a_named_tool_missing_from_tools_is_a_400_naming_tool_choice(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert err.value.body["param"] == "tool_choice.function.name" and "get_time" in err.value.body["message"]
    assert compat.up.chat_requests == []
    await client.close()
