"""LangChain's ChatOpenAI (langchain-openai): chat, stream, bound tools, structured output, the Responses API."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from tests.clients.cases import WEATHER_PARAMS, City, city_json, weather_call
from tests.clients.conftest import MODEL, TOKEN

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS}}


def chat(bmo, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=bmo.base_url, api_key=TOKEN, max_retries=0, **kwargs)


async def test_chat(bmo):
    assert (await chat(bmo).ainvoke("hi lc")).content == "echo: hi lc"


async def test_stream(bmo):
    assert "".join([c.content async for c in chat(bmo).astream("flow lc")]) == "echo: flow lc"


async def test_client_tools(bmo):
    bmo.up.script(weather_call())
    message = await chat(bmo).bind_tools([TOOL]).ainvoke("weather?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Oslo"})]


async def test_structured_output(bmo):
    bmo.up.script(city_json())
    assert await chat(bmo).with_structured_output(City).ainvoke("Oslo?") == City(name="Oslo", population=700000)


async def test_responses_structured_output(bmo):
    bmo.up.script(city_json())
    structured = chat(bmo, use_responses_api=True).with_structured_output(City, method="json_schema")
    assert await structured.ainvoke("Oslo?") == City(name="Oslo", population=700000)
    assert [r["route"] for r in await bmo.rows()] == ["responses_create"]


async def test_responses(bmo):
    message = await chat(bmo, use_responses_api=True).ainvoke("hi responses")
    assert message.text == "echo: hi responses"
    assert [r["route"] for r in await bmo.rows()] == ["responses_create"]
