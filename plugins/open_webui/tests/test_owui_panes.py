"""An Open WebUI chat is one session per model: compare panes never collide, a model switch just works."""

from __future__ import annotations

import asyncio

import openai
import pytest_asyncio
from owui_server import MODEL, TOKEN, open_webui_like_upstream, serve

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import FakeUpstream

OTHER = "fake/other-model"
CHAT = {"X-OpenWebUI-Chat-Id": "compare-chat"}


@pytest_asyncio.fixture
async def two_models(tmp_path, workspace):
    async with FakeUpstream(models=["fake-model", "other-model"], default=open_webui_like_upstream) as up:
        server = await serve(tmp_path, up, workspace)
        try:
            yield server, up
        finally:
            await server.stop()


async def test_two_models_on_one_chat_id_stream_side_by_side(two_models):
    server, up = two_models
    sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)

    async def pane(model: str) -> tuple[str, str]:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=model, stream=True, extra_headers=CHAT,
            messages=[{"role": "user", "content": "take your time"}])
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
        return raw.headers["x-bmo-session-id"], text

    (first_id, first), (second_id, second) = await asyncio.gather(pane(MODEL), pane(OTHER))
    assert first == second == "slow but sure"  # both answered: no 409 busy for the second pane
    assert first_id == "openwebui-compare-chat@fake:fake-model"
    assert second_id == "openwebui-compare-chat@fake:other-model"
    co = coordinator_of(server.host)
    assert (await co.get_session(first_id)).model == MODEL and (await co.get_session(second_id)).model == OTHER
    await sdk.close()


async def test_a_model_switch_continues_in_that_models_session_seeded_from_the_chat(two_models):
    server, up = two_models
    sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
    first = await sdk.chat.completions.create(model=MODEL, extra_headers=CHAT,
                                              messages=[{"role": "user", "content": "hello"}])
    chat = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "now you"}]
    # The default model_override_policy ("reject") applies to X-BMO-Session-Id, not to a chat's panes.
    switched = await sdk.chat.completions.create(model=OTHER, extra_headers=CHAT, messages=chat)
    assert switched.choices[0].message.content == "echo: now you"
    sent = [(m["role"], m["content"]) for m in up.chat_requests[-1].messages if m["role"] != "system"]
    assert sent == [("user", "hello"), ("assistant", "echo: hello"), ("user", "now you")]
    assert up.chat_requests[-1].body["model"] == "other-model"
    await sdk.close()
