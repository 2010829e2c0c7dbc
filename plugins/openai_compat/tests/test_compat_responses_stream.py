"""The Responses API streamed: typed events the SDK parses, function calls, reasoning, busy sessions, cancel."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from compat_support import MODEL, TOKEN

from bmo.testing.fake_upstream import error, reply, tool_call

WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


async def collect(stream) -> list:
    return [event async for event in stream]


async def test_streamed_text_arrives_as_typed_numbered_events(compat):
    compat.model.answer(reply("one two three", chunks=3))
    client = compat.aclient()
    events = await collect(await client.responses.create(model=MODEL, input="count", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == "one two three" and done.usage.total_tokens > 0
    assert len({e.item_id for e in events if hasattr(e, "item_id")}) == 1
    stored = await client.responses.retrieve(done.id)
    assert stored.output_text == "one two three"
    await client.close()


async def test_stream_helper_gives_the_final_response(compat):
    client = compat.aclient()
    async with client.responses.stream(model=MODEL, input="helper") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: helper"
    await client.close()


async def test_streamed_function_call_sends_argument_events(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Rome"}, id="call_r")]))
    client = compat.aclient()
    events = await collect(await client.responses.create(model=MODEL, input="Rome?", tools=[WEATHER], stream=True))
    types = [e.type for e in events]
    assert types[-5:] == ["response.output_item.added", "response.function_call_arguments.delta",
                          "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Rome"}
    call = events[-1].response.output[-1]
    assert (call.type, call.name, call.call_id) == ("function_call", "get_weather", "call_r")
    await client.close()


async def test_bmo_tool_progress_streams_as_reasoning_summary(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), reply("42"))
    client = compat.aclient()
    events = await collect(await client.responses.create(model=MODEL, input="notes?", stream=True))
    types = [e.type for e in events]
    assert "response.reasoning_summary_text.delta" in types
    assert not any(t.startswith("response.function_call") for t in types)
    assert [i.type for i in events[-1].response.output] == ["reasoning", "message"]
    await client.close()


async def test_a_failing_run_ends_the_stream_with_response_failed(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), error(500, "boom"))
    client = compat.aclient()
    raw = await client.responses.with_raw_response.create(model=MODEL, input="fail later", stream=True)
    events = await collect(raw.parse())
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    await compat.assert_outcome(raw.headers["x-request-id"], "error_500", 502, level="warn")
    await client.close()


async def _open_stalled(compat, http, **body):
    response = await http.post(compat.api + "/responses", headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"model": MODEL, "input": "hang", "stream": True, **body})
    seen = b""
    async with asyncio.timeout(10):
        while b"response.output_text.delta" not in seen:
            seen += await response.content.readany()
    return response, seen


async def test_continuing_a_busy_response_is_a_409_that_the_sdk_does_not_retry(compat):
    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="start")
    compat.model.answer(reply("slow answer", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        hanging, _ = await _open_stalled(compat, http, previous_response_id=first.id)
        raw = await http.post(compat.api + "/responses", headers={"Authorization": f"Bearer {TOKEN}"},
                              json={"input": "again", "previous_response_id": first.id})
        body = await raw.json()
        assert raw.status == 409 and raw.headers["x-should-retry"] == "false"
        assert body["error"]["code"] == "queued" and body["error"]["running_request_id"] == hanging.headers[
            "X-Request-Id"]
        await compat.assert_outcome(raw.headers["X-Request-Id"], "queued", 409)
        hanging.close()
    await client.close()


async def test_cancel_stops_a_running_response(compat):
    compat.model.answer(reply("never ends", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        hanging, seen = await _open_stalled(compat, http)
        response_id = json.loads(seen.split(b"data: ", 1)[1].split(b"\n", 1)[0])["response"]["id"]
        cancel = await http.post(f"{compat.api}/responses/{response_id}/cancel",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert cancel.status == 200
        assert (await cancel.json())["status"] == "cancelled"
        rest = await hanging.content.read()
        assert b"response.failed" in rest
    client = compat.aclient()
    assert (await client.responses.retrieve(response_id)).status == "cancelled"
    await client.close()
