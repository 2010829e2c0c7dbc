"""One run per intent: a client's retry joins the run its first attempt started, instead of a 409 or a second run."""

from __future__ import annotations

import asyncio

import openai
import pytest
from compat_support import MODEL, is_router_call

from bmo.testing.fake_upstream import reply

SLOW = dict(chunks=4, chunk_delay_s=0.3)


def agent_calls(compat) -> int:
    """Model calls of agent runs (the ambiguity router's are not runs)."""
    return sum(1 for r in compat.up.chat_requests if not is_router_call(r.body))


async def test_an_identical_retry_on_a_busy_session_joins_the_running_run(compat):
    compat.model.answer(reply("slow and steady wins", **SLOW))
    client = compat.aclient(max_retries=0)
    messages = [{"role": "user", "content": "go"}]
    headers = {"X-BMO-Session-Id": "s-retry"}
    first = await client.chat.completions.create(model=MODEL, messages=messages, stream=True, extra_headers=headers)
    first_id = first.response.headers["x-request-id"]
    # The Vercel AI SDK and LiteLLM re-send the very same body, whatever x-should-retry said.
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=headers)
    assert raw.parse().choices[0].message.content == "slow and steady wins"
    first_text = "".join([c.choices[0].delta.content or "" async for c in first if c.choices])
    assert first_text == "slow and steady wins"
    assert agent_calls(compat) == 1  # one run reached the model
    retry_id = raw.headers["x-request-id"]
    await compat.assert_outcome(retry_id, "resumed", 200)
    resume = next(e for e in await compat.timeline(retry_id) if e["event"] == "resume")
    assert resume["detail"]["resumed_request_id"] == first_id and resume["detail"]["joined_by"] == "identical_retry"
    assert (await compat.row(retry_id))["run_id"] == first_id
    await client.close()


async def test_a_different_request_on_a_busy_session_is_still_queued(compat):
    compat.model.answer(reply("slow and steady wins", **SLOW))
    client = compat.aclient(max_retries=0)
    headers = {"X-BMO-Session-Id": "s-other"}
    first = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                 stream=True, extra_headers=headers)
    with pytest.raises(openai.ConflictError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "else"}],
                                             extra_headers=headers)
    [c async for c in first]
    await client.close()


async def test_an_idempotency_key_maps_retries_to_one_run(compat):
    compat.model.answer(reply("once only", **SLOW))
    client = compat.aclient(max_retries=0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "charge it"}]}
    key = {"Idempotency-Key": "key-123"}
    first, second = await asyncio.gather(
        client.chat.completions.with_raw_response.create(**body, extra_headers=key),
        client.chat.completions.with_raw_response.create(**body, extra_headers=key))
    third = await client.chat.completions.with_raw_response.create(**body, extra_headers=key)  # after the end
    answers = {r.parse().choices[0].message.content for r in (first, second, third)}
    assert answers == {"once only"}
    assert agent_calls(compat) == 1
    outcomes = sorted([(await compat.row(r.headers["x-request-id"]))["outcome"] for r in (first, second, third)])
    assert outcomes == ["final_answer", "resumed", "resumed"]
    await client.close()


async def test_an_idempotency_key_reused_for_another_request_is_a_422(compat):
    client = compat.aclient(max_retries=0)
    key = {"Idempotency-Key": "key-abc"}
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}], extra_headers=key)
    with pytest.raises(openai.UnprocessableEntityError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}],
                                             extra_headers=key)
    assert err.value.body["code"] == "idempotency_key_reused" and err.value.body["param"] == "Idempotency-Key"
    await client.close()


async def test_the_key_table_is_bounded_and_expires():
    from bmo_openai_compat import retries

    now = [0.0]
    index = retries.RetryIndex(clock=lambda: now[0])

    class FakeRun:  # only the id and on_finish are read
        def __init__(self, i):
            self.id = f"run{i}"

        def on_finish(self, callback):
            pass

    last = retries.MAX_KEYS + 4
    for i in range(last + 1):
        index.started(FakeRun(i), "", "intent", f"k{i}", durable=False)
    assert index.seen("k0") is None
    intent, future = index.seen(f"k{last}")
    assert (intent, future.result()) == ("intent", f"run{last}")
    now[0] = retries.KEY_TTL_S + 1
    assert index.seen(f"k{last}") is None
