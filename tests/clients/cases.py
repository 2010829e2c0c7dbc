"""What every client test scripts and checks: the fake model's replies, the tool, the structured-output type."""

from __future__ import annotations

import pydantic

from bmo.testing.fake_upstream import reply, tool_call

WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


class City(pydantic.BaseModel):
    name: str
    population: int


def weather_call(call_id: str = "call_w1"):
    """The model calls the client's get_weather tool."""
    return reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"}, id=call_id)])


def city_json():
    return reply('{"name": "Oslo", "population": 700000}')


def tool_results(bmo) -> list[dict]:
    """The tool messages the model received on its last call (what the client sent back)."""
    return [m for m in bmo.up.chat_requests[-1].body["messages"] if m["role"] == "tool"]
