"""pydantic-ai: an Agent on OpenAIChatModel and on OpenAIResponsesModel, with tools and output types."""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from bmo.testing.fake_upstream import reply, tool_call
from tests.clients.cases import City, tool_results, weather_call
from tests.clients.conftest import MODEL, TOKEN


def provider(bmo) -> OpenAIProvider:
    return OpenAIProvider(base_url=bmo.base_url, api_key=TOKEN)


def with_weather(agent: Agent) -> Agent:
    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    return agent


async def test_chat(bmo):
    result = await Agent(OpenAIChatModel(MODEL, provider=provider(bmo))).run("hi pai")
    assert result.output == "echo: hi pai"


async def test_stream(bmo):
    async with Agent(OpenAIChatModel(MODEL, provider=provider(bmo))).run_stream("flow pai") as result:
        text = [t async for t in result.stream_text(delta=True)]
    assert "".join(text) == "echo: flow pai"


async def test_client_tools(bmo):
    bmo.up.script(weather_call(), reply("It is sunny."))
    result = await with_weather(Agent(OpenAIChatModel(MODEL, provider=provider(bmo)))).run("weather?")
    assert result.output == "It is sunny."
    assert [m["content"] for m in tool_results(bmo)] == ["sunny in Oslo"]


async def test_structured_output_through_its_output_tool(bmo):
    # pydantic-ai's default output mode is a tool the model must call: the client-tool round trip.
    bmo.up.script(reply(tool_calls=[tool_call("final_result", {"name": "Oslo", "population": 700000})]))
    result = await Agent(OpenAIChatModel(MODEL, provider=provider(bmo)), output_type=City).run("Oslo?")
    assert result.output == City(name="Oslo", population=700000)


async def test_responses(bmo):
    result = await Agent(OpenAIResponsesModel(MODEL, provider=provider(bmo))).run("hi pai responses")
    assert result.output == "echo: hi pai responses"
    assert [r["route"] for r in await bmo.rows()] == ["responses_create"]


async def test_responses_client_tools(bmo):
    bmo.up.script(weather_call(), reply("Sunny indeed."))
    result = await with_weather(Agent(OpenAIResponsesModel(MODEL, provider=provider(bmo)))).run("weather?")
    assert result.output == "Sunny indeed."
    assert [m["content"] for m in tool_results(bmo)] == ["sunny in Oslo"]
