"""Structured outputs: ``response_format`` holds the run's final answer to JSON or a JSON schema."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
from compat_support import MODEL

from bmo.hookspecs import hookimpl
from bmo.testing.fake_upstream import reply, tool_call


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def answer_requests(compat) -> list[dict]:
    """The upstream bodies of the run's steps (the router never runs under a format)."""
    return [r.body for r in compat.up.chat_requests]


async def test_parse_with_a_pydantic_model_returns_the_parsed_object(compat):
    compat.model.answer(reply('{"city": "Oslo", "celsius": 4}', chunks=4))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.parse(
        model=MODEL, messages=[{"role": "user", "content": "weather in Oslo?"}], response_format=Weather)
    completion = raw.parse()
    assert completion.choices[0].message.parsed == Weather(city="Oslo", celsius=4)
    sent = answer_requests(compat)
    assert len(sent) == 1 and compat.model.router_calls == 0
    # Tools are offered on the step, so the format is said in the system prompt, not sent as response_format.
    assert "response_format" not in sent[0] and sent[0]["tools"]
    assert '"celsius"' in sent[0]["messages"][0]["content"]
    request_id = raw.headers["x-request-id"]
    await compat.assert_outcome(request_id, "final_answer", 200)
    events = {e["event"]: e["detail"] for e in await compat.timeline(request_id)}
    assert events["response_format"]["format"] == {"type": "json_schema", "name": "Weather", "strict": True}
    assert events["answer_checked"]["ok"] is True and events["answer_checked"]["attempt"] == 1
    await client.close()


async def test_streamed_parse_delivers_the_json_as_content_deltas(compat):
    compat.model.answer(reply('{"city": "Rome", "celsius": 21}', chunks=5))
    client = compat.aclient()
    async with client.chat.completions.stream(
            model=MODEL, messages=[{"role": "user", "content": "weather in Rome?"}], response_format=Weather) as stream:
        deltas = [e.delta async for e in stream if e.type == "content.delta"]
        final = await stream.get_final_completion()
    assert "".join(deltas) == '{"city": "Rome", "celsius": 21}'
    assert final.choices[0].message.parsed == Weather(city="Rome", celsius=21)
    await client.close()


async def test_json_object_answer_is_valid_json_after_the_run_used_its_tools(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                        reply('```json\n{"answer": 42}\n```'))
    client = compat.aclient()
    completion = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "read notes.txt, reply in JSON"}],
        response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"answer": 42}
    assert compat.up.chat_requests[1].body["messages"][-1]["role"] == "tool"  # the tool really ran
    await client.close()


async def test_a_non_conforming_answer_gets_one_repair_with_the_validation_error(compat):
    compat.model.answer(reply("It is 4 degrees in Oslo."), reply('{"city": "Oslo", "celsius": 4}'))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.parse(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], response_format=Weather)
    assert raw.parse().choices[0].message.parsed == Weather(city="Oslo", celsius=4)
    first, repair = answer_requests(compat)
    assert "not valid JSON" in repair["messages"][-1]["content"]
    assert repair["messages"][-2] == {"role": "assistant", "content": "It is 4 degrees in Oslo."}
    assert "tools" not in repair  # the repair step asks the upstream for the format itself
    assert repair["response_format"]["type"] == "json_schema"
    assert repair["response_format"]["json_schema"]["name"] == "Weather"
    checks = [e["detail"] for e in await compat.timeline(raw.headers["x-request-id"]) if e["event"] == "answer_checked"]
    assert [(c["attempt"], c["ok"]) for c in checks] == [(1, False), (2, True)]
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_schema_the_model_cannot_meet_is_a_502_invalid_model_output(compat, stream):
    compat.model.answer(reply('{"city": "Oslo"}'), reply('{"city": "Oslo", "celsius": "cold"}'))
    client = compat.aclient(max_retries=0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "weather?"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "Weather", "schema": Weather.model_json_schema(), "strict": True}}}
    if not stream:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(**body)
        assert err.value.status_code == 502 and err.value.body["code"] == "invalid_model_output"
        assert "celsius" in err.value.body["message"]
        request_id = err.value.request_id
    else:
        # A plain 502 when the check failed before the first keep-alive opened the stream, else an error event.
        request_id = None
        with pytest.raises(openai.APIError) as err:
            stream_ = await client.chat.completions.create(**body, stream=True)
            request_id = stream_.response.headers["x-request-id"]
            async for chunk in stream_:
                assert not (chunk.choices and chunk.choices[0].delta.content)  # no invalid JSON went out
        if isinstance(err.value, openai.APIStatusError):
            assert err.value.status_code == 502
            request_id = err.value.request_id
        assert "does not meet the requested format" in err.value.message
    assert len(compat.up.chat_requests) == 2  # the answer and exactly one repair
    await compat.assert_outcome(request_id, "error_500", 502, level="warn")
    await client.close()


async def test_an_upstream_refusal_is_the_refusal_field(compat):
    compat.model.answer(reply(refusal="I can't help with that."))
    client = compat.aclient()
    completion = await client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], response_format=Weather)
    message = completion.choices[0].message
    assert message.refusal == "I can't help with that." and message.content is None and message.parsed is None
    await client.close()


class TaskClassifier:
    """A throwaway client plugin: prompts starting with "### Task:" are background tasks."""

    @hookimpl
    def bmo_openai_compat_classify(self, request, body):
        return "task" if str(body["messages"][-1].get("content") or "").startswith("### Task:") else None


async def test_a_background_task_sends_the_format_upstream_and_checks_the_answer(compat):
    compat.host.pm.register(TaskClassifier(), name="test-task-classifier")
    try:
        compat.model.answer(reply('{"title": "Weather"}'), reply("Weather talk"))
        client = compat.aclient(max_retries=0)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "### Task: title, as JSON"}],
                "response_format": {"type": "json_object"}}
        done = await client.chat.completions.create(**body)
        assert json.loads(done.choices[0].message.content) == {"title": "Weather"}
        assert compat.up.chat_requests[-1].body["response_format"] == {"type": "json_object"}
        with pytest.raises(openai.APIStatusError) as err:  # one direct call: no repair step
            await client.chat.completions.create(**body)
        assert err.value.status_code == 502 and err.value.body["code"] == "invalid_model_output"
        assert len(compat.up.chat_requests) == 2
        await client.close()
    finally:
        compat.host.pm.unregister(name="test-task-classifier")


async def test_a_formatted_run_stopped_by_loop_detection_is_an_error_not_prose(compat):
    compat.model.answer(*[reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]) for _ in range(6)])
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "loop"}],
                                             response_format={"type": "json_object"})
    # Without a format the explanation would be the answer; under one, it is not JSON, so it is no answer.
    assert err.value.status_code == 500 and err.value.body["code"] == "loop_detected"
    await client.close()
