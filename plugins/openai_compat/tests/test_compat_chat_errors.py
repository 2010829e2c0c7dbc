"""Errors a chat user reads: plain words for the person, the mechanics in fields for programs."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL, OTHER_MODEL

from bmo.testing.fake_upstream import error, reply

pytestmark = pytest.mark.asyncio


async def test_the_busy_409_speaks_plainly_and_puts_the_resume_hint_in_its_own_field(compat):
    compat.model.answer(reply("slow and steady", chunks=4, chunk_delay_s=0.3))
    client = compat.aclient(max_retries=0)
    first = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                 stream=True, extra_headers={"X-BMO-Session-Id": "s-plain"})
    running = first.response.headers["x-request-id"]
    with pytest.raises(openai.ConflictError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "me too"}],
                                             extra_headers={"X-BMO-Session-Id": "s-plain"})
    body = err.value.body
    assert body["message"].startswith("BMO is still answering the previous message in this chat")
    assert "X-BMO-Resume" not in body["message"] and running not in body["message"]
    assert body["resume_headers"] == {"X-BMO-Resume": running} and running in body["resume_hint"]
    assert err.value.response.headers["x-should-retry"] == "false"
    assert "".join([c.choices[0].delta.content or "" async for c in first if c.choices]) == "slow and steady"
    await client.close()


async def test_a_rejected_model_override_tells_the_user_what_to_do(compat):
    client = compat.aclient(max_retries=0)
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                         extra_headers={"X-BMO-Session-Id": "s-override"})
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=OTHER_MODEL, messages=[{"role": "user", "content": "hi"}],
                                             extra_headers={"X-BMO-Session-Id": "s-override"})
    message = err.value.body["message"]
    assert message.startswith(f"This conversation runs on model '{MODEL}'") and "start a new chat" in message
    await client.close()


async def test_an_unreachable_model_on_the_first_turn_says_so_in_plain_words(compat):
    compat.model.route(error(503, "upstream is down"))
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    message = err.value.body["message"]
    assert message.startswith("BMO could not get an answer from the model") and "answered HTTP 503" in message
    await client.close()
