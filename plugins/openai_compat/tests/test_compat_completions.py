"""Legacy ``POST /v1/completions``: one direct model call, no agent run, its own ledger route and kind."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply


async def test_completion_with_suffix_is_one_upstream_completions_call_and_no_run(compat):
    compat.model.answer(reply("    return a + b\n"))
    client = compat.aclient()
    raw = await client.completions.with_raw_response.create(
        model=MODEL, prompt="def add(a, b):\n", suffix="\n\nprint(add(1, 2))\n", max_tokens=32, stop=["\n\n"],
        temperature=0.2)
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "    return a + b\n" and completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    (sent,) = compat.up.completion_requests
    assert compat.up.chat_requests == []  # no chat call, no router, no agent loop
    assert sent.body["model"] == "fake-model" and sent.body["suffix"] == "\n\nprint(add(1, 2))\n"
    assert (sent.body["max_tokens"], sent.body["stop"], sent.body["temperature"]) == (32, ["\n\n"], 0.2)
    assert coordinator_of(compat.host).runs() == []
    request_id = raw.headers["x-request-id"]
    action = await compat.assert_outcome(request_id, "final_answer", 200)
    assert action["route"] == "completions" and action["kind"] == "completion"
    calls = [e["detail"] for e in await compat.timeline(request_id) if e["event"] == "completion_call"]
    assert calls == [{"via": "upstream_completions", "suffix": True, "finish_reason": "stop"}]
    await client.close()


async def test_streamed_completion_parses_in_the_sdk(compat):
    compat.model.answer(reply("world"))
    client = compat.aclient()
    stream = await client.completions.create(model=MODEL, prompt="hello ", stream=True,
                                             stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    await client.close()


async def test_an_upstream_without_completions_gets_one_fill_in_the_middle_chat_call(compat):
    compat.up.legacy_completions = False
    compat.model.answer(reply("    return a + b"), reply("second"))
    client = compat.aclient()
    first = await client.completions.create(model=MODEL, prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))")
    assert first.choices[0].text == "    return a + b"
    (chat,) = compat.up.chat_requests
    assert "tools" not in chat.body
    user = chat.body["messages"][-1]["content"]
    assert "def add(a, b):" in user and "print(add(1, 2))" in user and "cursor" in user
    # The 404 is remembered: the next completion goes straight to chat.
    await client.completions.create(model=MODEL, prompt="x")
    assert len(compat.up.completion_requests) == 1 and len(compat.up.chat_requests) == 2
    await client.close()


async def test_a_prompt_list_answers_one_choice_per_prompt(compat):
    compat.model.answer(reply("A"), reply("A"))
    client = compat.aclient()
    completion = await client.completions.create(model=MODEL, prompt=["one", "two"])
    assert sorted(c.index for c in completion.choices) == [0, 1]
    assert len(compat.up.completion_requests) == 2
    await client.close()


@pytest.mark.parametrize("extra, param", [({"n": 2}, "n"), ({"echo": True}, "echo"), ({"prompt": []}, "prompt")])
async def test_unsupported_completion_fields_are_a_400_naming_them(compat, extra, param):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.completions.create(**{"model": MODEL, "prompt": "x", **extra})
    assert err.value.body["param"] == param
    assert compat.up.requests == [r for r in compat.up.requests if r.path == "/v1/models"]
    await client.close()


async def test_unknown_model_is_a_404(compat):
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError) as err:
        await client.completions.create(model="fake/nope", prompt="x")
    assert err.value.body["code"] == "model_not_found"
    await client.close()


async def test_an_upstream_error_on_completions_is_the_clients_error_and_is_not_mistaken_for_no_endpoint(compat):
    from bmo.testing.fake_upstream import error

    compat.up.script(error(400, "prompt too long", code="context_length_exceeded"))
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        await client.completions.create(model=MODEL, prompt="x" * 10)
    assert "prompt too long" in err.value.body["message"]
    compat.model.answer(reply("fine"))
    await client.completions.create(model=MODEL, prompt="y")
    assert len(compat.up.completion_requests) == 2 and compat.up.chat_requests == []  # still the upstream's own
    await client.close()
