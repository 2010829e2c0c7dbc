"""Chat completions through the official openai SDK: sync and async, streamed and not, usage, headers."""

from __future__ import annotations

import asyncio

import openai
import pytest
from compat_support import MODEL

from bmo.agent import coordinator_of


async def test_sync_non_streaming_answer_parses_strictly_and_lands_in_the_ledger(compat):
    client = compat.client()
    raw = await asyncio.to_thread(lambda: client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]))
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    request_id = raw.headers["x-request-id"]
    assert completion.id == "chatcmpl-" + request_id.removeprefix("req_")
    assert "x-bmo-session-id" not in raw.headers  # no session header: a throw-away session
    assert await coordinator_of(compat.host).list_sessions(include_ephemeral=True) == []  # and it is gone
    action = await compat.assert_outcome(request_id, "final_answer", 200)
    assert action["kind"] == "chat" and action["model"] == MODEL and action["stream"] is False


async def test_sync_streaming_with_usage_sends_role_deltas_finish_usage(compat):
    client = compat.client()

    def consume():
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "stream me please"}], stream=True,
            stream_options={"include_usage": True})
        return stream.response.headers["x-request-id"], list(stream)

    request_id, chunks = await asyncio.to_thread(consume)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1
    await compat.assert_outcome(request_id, "final_answer", 200)


async def test_async_streaming_without_usage_has_no_usage_chunk(compat):
    client = compat.aclient()
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": "parts"}]}], stream=True)
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: parts"
    await client.close()


async def test_async_non_streaming(compat):
    client = compat.aclient()
    completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "echo: hi"
    assert completion.object == "chat.completion"
    await client.close()


async def test_retrieve_one_model_by_an_id_with_a_slash(compat):
    client = compat.aclient()
    model = await client.models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "fake")
    with pytest.raises(openai.NotFoundError) as err:
        await client.models.retrieve("fake/not-a-model")
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    await compat.assert_outcome(err.value.request_id, "error_500", 404, level="info")  # a client error (error_class client)
    await client.close()
