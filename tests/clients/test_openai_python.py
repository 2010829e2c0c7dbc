"""The official openai Python SDK: chat, stream, client tools, structured output, the Responses API."""

from __future__ import annotations

import asyncio
import json

import openai

from tests.clients.cases import WEATHER_PARAMS, City, city_json, weather_call
from tests.clients.conftest import MODEL, TOKEN

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMS}}


def client(bmo) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=bmo.base_url, api_key=TOKEN, max_retries=0)


async def test_chat(bmo):
    answer = await client(bmo).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"


async def test_stream(bmo):
    stream = await client(bmo).chat.completions.create(model=MODEL, stream=True,
                                                       messages=[{"role": "user", "content": "flow"}])
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "echo: flow"


async def test_client_tools(bmo):
    bmo.up.script(weather_call())
    answer = await client(bmo).chat.completions.create(model=MODEL, tools=[TOOL],
                                                       messages=[{"role": "user", "content": "weather?"}])
    call = answer.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Oslo"})


async def test_structured_output(bmo):
    bmo.up.script(city_json())
    parsed = await client(bmo).chat.completions.parse(model=MODEL, response_format=City,
                                                      messages=[{"role": "user", "content": "Oslo?"}])
    assert parsed.choices[0].message.parsed == City(name="Oslo", population=700000)


async def test_responses_structured_output(bmo):
    bmo.up.script(city_json())
    parsed = await client(bmo).responses.parse(model=MODEL, input="Oslo?", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=700000)


async def test_responses_structured_output_stream(bmo):
    bmo.up.script(city_json())
    async with client(bmo).responses.stream(model=MODEL, input="Oslo?", text_format=City) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert final.output_parsed == City(name="Oslo", population=700000)
    assert "".join(deltas) == '{"name": "Oslo", "population": 700000}'


async def test_responses(bmo):
    c = client(bmo)
    first = await c.responses.create(model=MODEL, input="first")
    second = await c.responses.create(input="second", previous_response_id=first.id)
    assert (first.output_text, second.output_text) == ("echo: first", "echo: second")
    rows = await bmo.rows("responses_create")
    assert len({r["session_id"] for r in rows}) == 1


async def test_responses_stream(bmo):
    async with client(bmo).responses.stream(model=MODEL, input="streamed") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "echo: streamed"


async def test_sync_client_in_a_thread(bmo):
    sync = openai.OpenAI(base_url=bmo.base_url, api_key=TOKEN, max_retries=0)
    answer = await asyncio.to_thread(lambda: sync.responses.create(model=MODEL, input="sync"))
    assert answer.output_text == "echo: sync"
