"""``tool_choice`` and ``parallel_tool_calls`` on ``POST /v1/responses`` (flat), checked in what the upstream received."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL, is_router_call

from bmo.testing.fake_upstream import reply, tool_call

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def agent_calls(compat) -> list[dict]:
    return [r.body for r in compat.up.chat_requests if not is_router_call(r.body)]


def offered(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


@pytest.fixture
async def auto(start_compat):
    return await start_compat(tool_policy="auto_approve")


async def test_tool_choice_none_offers_no_client_tool_and_answers_in_text(auto):
    auto.model.answer(reply("No tools needed: sunny."))
    client = auto.aclient()
    response = await client.responses.create(model=MODEL, input="Oslo?", tools=[WEATHER], tool_choice="none")
    assert response.output_text == "No tools needed: sunny."
    assert [i.type for i in response.output] == ["message"] and response.tool_choice == "none"
    (sent,) = agent_calls(auto)
    assert "get_weather" not in offered(sent) and "tool_choice" not in sent
    await client.close()


async def test_tool_choice_required_is_sent_on_the_first_step_only(auto):
    auto.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                      reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"})]))
    client = auto.aclient()
    response = await client.responses.create(model=MODEL, input="Oslo?", tools=[WEATHER], tool_choice="required")
    assert [(i.type, i.name) for i in response.output if i.type == "function_call"] == [("function_call", "get_weather")]
    first, second = agent_calls(auto)
    assert first["tool_choice"] == "required"
    assert "tool_choice" not in second  # back to the upstream's default, "auto"
    assert auto.model.router_calls == 0  # a forced tool is a program, not a question to clarify
    await client.close()


async def test_a_named_flat_tool_choice_goes_upstream_in_the_chat_shape_and_ends_with_that_call(auto):
    auto.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Rome"})]))
    client = auto.aclient()
    events = [e async for e in await client.responses.create(
        model=MODEL, input="Rome?", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
        stream=True)]
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [(i.name, i.arguments) for i in final.output if i.type == "function_call"] == [
        ("get_weather", '{"city": "Rome"}')]
    assert final.tool_choice.type == "function" and final.tool_choice.name == "get_weather"
    (sent,) = agent_calls(auto)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "get_weather" in offered(sent)
    await client.close()


async def test_parallel_tool_calls_is_passed_through(auto):
    auto.model.answer(reply("fine"))
    client = auto.aclient()
    response = await client.responses.create(model=MODEL, input="hi", tools=[WEATHER], parallel_tool_calls=False)
    assert response.parallel_tool_calls is False
    assert agent_calls(auto)[-1]["parallel_tool_calls"] is False
    await client.close()


@pytest.mark.parametrize(("choice", "tools", "param"), [
    ({"type": "function", "name": "get_time"}, [WEATHER], "tool_choice.name"),
    ({"type": "function", "function": {"name": "get_weather"}}, [WEATHER], "tool_choice"),  # chat's nested shape
    ("required", None, "tool_choice"),
    ({"type": "file_search"}, [WEATHER], "tool_choice"),
])
async def test_an_unusable_tool_choice_is_a_400_naming_the_field(auto, choice, tools, param):
    client = auto.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=MODEL, input="hi", tools=tools or openai.NOT_GIVEN, tool_choice=choice)
    assert err.value.body["param"] == param
    assert auto.up.chat_requests == []
    await client.close()
