"""The OpenAI Agents SDK: its default model (the Responses API) and its chat-completions model."""

from __future__ import annotations

import openai
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from tests.clients.cases import City, city_json, tool_results, weather_call
from tests.clients.conftest import MODEL, TOKEN

set_tracing_disabled(True)  # the SDK would otherwise export traces to api.openai.com


@function_tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def responses_model(bmo) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(MODEL, openai_client=openai.AsyncOpenAI(base_url=bmo.base_url, api_key=TOKEN,
                                                                        max_retries=0))


def chat_model(bmo) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(MODEL, openai_client=openai.AsyncOpenAI(base_url=bmo.base_url, api_key=TOKEN,
                                                                              max_retries=0))


async def test_responses(bmo):
    result = await Runner.run(Agent(name="a", instructions="Be brief.", model=responses_model(bmo)), "hello agent")
    assert result.final_output == "echo: hello agent"
    assert [r["route"] for r in await bmo.rows()] == ["responses_create"]


async def test_responses_client_tools(bmo):
    bmo.up.script(weather_call(), city_json())
    agent = Agent(name="a", model=responses_model(bmo), tools=[get_weather])
    result = await Runner.run(agent, "weather in Oslo?")
    assert result.final_output == '{"name": "Oslo", "population": 700000}'
    assert [(m["tool_call_id"], m["content"]) for m in tool_results(bmo)] == [("call_w1", "sunny in Oslo")]


async def test_responses_stream(bmo):
    result = Runner.run_streamed(Agent(name="a", model=responses_model(bmo)), "stream agent")
    deltas = [e.data.delta async for e in result.stream_events()
              if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"]
    assert "".join(deltas) == result.final_output == "echo: stream agent"


async def test_structured_output(bmo):
    bmo.up.script(city_json())
    result = await Runner.run(Agent(name="a", model=responses_model(bmo), output_type=City), "Oslo?")
    assert result.final_output == City(name="Oslo", population=700000)
    assert '"population"' in bmo.up.chat_requests[0].body["messages"][0]["content"]  # the run held to City's schema


async def test_chat(bmo):
    result = await Runner.run(Agent(name="a", model=chat_model(bmo)), "hello chat")
    assert result.final_output == "echo: hello chat"


async def test_chat_client_tools(bmo):
    bmo.up.script(weather_call(), city_json())
    result = await Runner.run(Agent(name="a", model=chat_model(bmo), tools=[get_weather]), "weather?")
    assert "Oslo" in result.final_output
    assert [m["content"] for m in tool_results(bmo)] == ["sunny in Oslo"]


async def test_responses_previous_response_id_keeps_one_session(bmo):
    agent = Agent(name="a", model=responses_model(bmo))
    first = await Runner.run(agent, "turn one")
    second = await Runner.run(agent, "turn two", previous_response_id=first.last_response_id)
    assert second.final_output == "echo: turn two"
    rows = await bmo.rows("responses_create")
    assert len(rows) == 2 and len({r["session_id"] for r in rows}) == 1
    users = [m["content"] for m in bmo.up.chat_requests[-1].body["messages"] if m["role"] == "user"]
    assert users == ["turn one", "turn two"]
