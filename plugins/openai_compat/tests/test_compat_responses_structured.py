"""``text.format`` on ``POST /v1/responses``: the same answer format as chat's ``response_format``."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
from compat_support import MODEL

from bmo.testing.fake_upstream import reply, tool_call


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


WEATHER_FORMAT = {"type": "json_schema", "name": "Weather", "schema": Weather.model_json_schema(), "strict": True}


async def test_parse_with_a_pydantic_model_returns_the_parsed_object(compat):
    compat.model.answer(reply('{"city": "Oslo", "celsius": 4}', chunks=4))
    client = compat.aclient()
    raw = await client.responses.with_raw_response.parse(model=MODEL, input="weather in Oslo?", text_format=Weather)
    response = raw.parse()
    assert response.output_parsed == Weather(city="Oslo", celsius=4)
    assert response.text.format.type == "json_schema" and response.text.format.name == "Weather"
    sent = [r.body for r in compat.up.chat_requests]
    assert len(sent) == 1 and compat.model.router_calls == 0  # a format is a program: no clarifying question
    assert '"celsius"' in sent[0]["messages"][0]["content"]  # said in the system prompt while tools are offered
    request_id = raw.headers["x-request-id"]
    await compat.assert_outcome(request_id, "final_answer", 200)
    events = {e["event"]: e["detail"] for e in await compat.timeline(request_id)}
    assert events["response_format"]["format"] == {"type": "json_schema", "name": "Weather", "strict": True}
    assert events["answer_checked"]["ok"] is True
    stored = await client.responses.retrieve(response.id)
    assert json.loads(stored.output_text) == {"city": "Oslo", "celsius": 4}
    await client.close()


async def test_streamed_parse_delivers_the_checked_json_as_output_text_deltas(compat):
    compat.model.answer(reply("It is 21 in Rome."), reply('{"city": "Rome", "celsius": 21}', chunks=5))
    client = compat.aclient()
    async with client.responses.stream(model=MODEL, input="weather in Rome?", text_format=Weather) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    # The first answer failed the check and never went out; only the repaired JSON did.
    assert "".join(deltas) == '{"city": "Rome", "celsius": 21}'
    assert final.output_parsed == Weather(city="Rome", celsius=21)
    assert len(compat.up.chat_requests) == 2
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_create_with_a_json_object_format_answers_valid_json_after_tools(compat, stream):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                        reply('```json\n{"answer": 42}\n```'))
    client = compat.aclient()
    if stream:
        events = [e async for e in await client.responses.create(
            model=MODEL, input="read notes.txt, reply in JSON", text={"format": {"type": "json_object"}}, stream=True)]
        assert events[-1].type == "response.completed"
        text = events[-1].response.output_text
    else:
        text = (await client.responses.create(model=MODEL, input="read notes.txt, reply in JSON",
                                              text={"format": {"type": "json_object"}})).output_text
    assert json.loads(text) == {"answer": 42}
    assert compat.up.chat_requests[1].body["messages"][-1]["role"] == "tool"  # the tool really ran
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_schema_the_model_cannot_meet_is_a_502_invalid_model_output(compat, stream):
    compat.model.answer(reply('{"city": "Oslo"}'), reply('{"city": "Oslo", "celsius": "cold"}'))
    client = compat.aclient(max_retries=0)
    body = {"model": MODEL, "input": "weather?", "text": {"format": WEATHER_FORMAT}}
    if not stream:
        with pytest.raises(openai.APIStatusError) as err:
            await client.responses.create(**body)
        assert err.value.status_code == 502 and err.value.body["code"] == "invalid_model_output"
        assert "celsius" in err.value.body["message"]
        request_id = err.value.request_id
    else:
        # A plain 502 when the check failed before a keep-alive opened the stream, else error + response.failed.
        try:
            events_stream = await client.responses.create(**body, stream=True)
        except openai.APIStatusError as exc:
            assert exc.status_code == 502 and exc.body["code"] == "invalid_model_output"
            request_id = exc.request_id
        else:
            request_id = events_stream.response.headers["x-request-id"]
            events = [e async for e in events_stream]
            assert not [e for e in events if e.type == "response.output_text.delta"]  # no invalid JSON went out
            error = next(e for e in events if e.type == "error")
            assert error.code == "invalid_model_output" and "does not meet the requested format" in error.message
            assert events[-1].type == "response.failed"
    assert len(compat.up.chat_requests) == 2  # the answer and exactly one repair
    await compat.assert_outcome(request_id, "error_500", 502, level="warn")
    await client.close()


@pytest.mark.parametrize(("fmt", "param"), [
    ({"type": "json_schema", "name": "w", "schema": {"type": 12}}, "text.format.schema"),
    ({"type": "json_schema", "schema": {"type": "object"}}, "text.format.name"),
    ({"type": "json_schema", "name": "w", "json_schema": {"schema": {}}}, "text.format.schema"),
    ({"type": "grammar"}, "text.format.type"),
])
async def test_an_unusable_format_is_a_400_naming_the_field(compat, fmt, param):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=MODEL, input="x", text={"format": fmt})
    assert err.value.body["param"] == param
    assert compat.up.chat_requests == []
    await client.close()
