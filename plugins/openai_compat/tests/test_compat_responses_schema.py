"""Every Responses body and stream event BMO sends validates against the openai SDK's own types.

The SDK builds stream events without validating them, so a test that only iterates a stream would
not notice a wrong field; here each event is validated (not constructed) with pydantic.
"""

from __future__ import annotations

import json

import aiohttp
import pydantic
from compat_support import MODEL, TOKEN
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent

from bmo.streaming.sse_parser import SseParser
from bmo.testing.fake_upstream import error, reply, tool_call

EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


async def post(compat, body: dict) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(compat.api + "/responses", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            return response.status, await response.read()


def events_of(raw: bytes) -> list[dict]:
    out = []
    for sse in SseParser().feed(raw):
        data = json.loads(sse.data)
        assert sse.event == data["type"]  # the event: line names the same type as the data
        out.append(data)
    return out


async def test_text_reasoning_and_text_again_stream_as_valid_events_in_three_items(compat):
    compat.model.answer(reply("Let me look.", tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                        reply("It says 42.", chunks=3))
    status, raw = await post(compat, {"model": MODEL, "input": "notes?", "stream": True})
    assert status == 200
    events = events_of(raw)
    for event in events:
        EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = Response.model_validate(events[-1]["response"])
    assert [i.type for i in final.output] == ["message", "reasoning", "message"]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert added == [0, 1, 2]
    assert final.output_text == "Let me look.It says 42."


async def test_function_call_and_failure_events_validate(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {})]))
    _, raw = await post(compat, {"model": MODEL, "input": "w?", "tools": [WEATHER], "stream": True})
    for event in events_of(raw):
        EVENT.validate_python(event)
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), error(500, "down"))
    _, raw = await post(compat, {"model": MODEL, "input": "fail", "stream": True})
    events = events_of(raw)
    for event in events:
        EVENT.validate_python(event)
    assert events[-1]["type"] == "response.failed"


async def test_bodies_validate_whole_and_stored(compat):
    status, raw = await post(compat, {"model": MODEL, "input": [{"role": "user", "content": "hi"}],
                                      "instructions": "Be brief.", "metadata": {"k": "v"}})
    assert status == 200
    response = Response.model_validate_json(raw)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"{compat.api}/responses/{response.id}", headers=headers) as got:
            assert Response.model_validate_json(await got.read()).id == response.id
        async with http.get(f"{compat.api}/responses/{response.id}/input_items", headers=headers) as items:
            assert len(ResponseItemList.model_validate_json(await items.read()).data) == 1
