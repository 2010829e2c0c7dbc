"""LiteLLM's SDK (not its proxy): completion, stream, tools, structured output, responses."""

from __future__ import annotations

import json

import litellm

from tests.clients.cases import WEATHER_PARAMS, City, city_json, weather_call
from tests.clients.conftest import MODEL, TOKEN

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMS}}


def target(bmo) -> dict:
    # "openai/<id>": LiteLLM's generic OpenAI-compatible route, with BMO as the base URL.
    return {"model": f"openai/{MODEL}", "api_base": bmo.base_url, "api_key": TOKEN}


async def test_chat(bmo):
    answer = await litellm.acompletion(messages=[{"role": "user", "content": "hi ll"}], **target(bmo))
    assert answer.choices[0].message.content == "echo: hi ll"


async def test_stream(bmo):
    stream = await litellm.acompletion(messages=[{"role": "user", "content": "flow ll"}], stream=True, **target(bmo))
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "echo: flow ll"


async def test_client_tools(bmo):
    bmo.up.script(weather_call())
    answer = await litellm.acompletion(messages=[{"role": "user", "content": "weather?"}], tools=[TOOL],
                                       **target(bmo))
    call = answer.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Oslo"})


async def test_structured_output(bmo):
    bmo.up.script(city_json())
    answer = await litellm.acompletion(messages=[{"role": "user", "content": "Oslo?"}], response_format=City,
                                       **target(bmo))
    assert City.model_validate_json(answer.choices[0].message.content).name == "Oslo"


async def test_responses(bmo):
    answer = await litellm.aresponses(input="hi ll responses", **target(bmo))
    assert answer.output[0].content[0].text == "echo: hi ll responses"
    assert [r["route"] for r in await bmo.rows()] == ["responses_create"]
