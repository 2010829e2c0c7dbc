"""Image parts: passed unchanged to a model declared vision-capable, a short note for any other; the chat goes on."""

from __future__ import annotations

import pytest
from compat_support import MODEL, OTHER_MODEL, is_router_call

pytestmark = pytest.mark.asyncio

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
ASK = {"role": "user", "content": [{"type": "text", "text": "what is in this picture?"}, IMAGE]}


def agent_calls(compat) -> list[dict]:
    return [r.body for r in compat.up.chat_requests if not is_router_call(r.body)]


async def test_an_image_on_a_text_only_model_is_replaced_by_a_note_and_the_turn_is_answered(compat):
    client = compat.aclient(max_retries=0)
    headers = {"X-BMO-Session-Id": "s-image-text"}
    first = await client.chat.completions.create(model=MODEL, messages=[ASK], extra_headers=headers)
    assert first.choices[0].message.content.startswith("echo: what is in this picture?")
    sent = agent_calls(compat)[-1]["messages"][-1]
    assert isinstance(sent["content"], str) and "image" in sent["content"] and "left out" in sent["content"]
    assert "base64" not in sent["content"]
    # Open WebUI re-sends the image on every later turn: the chat keeps working, nothing forks.
    later = await client.chat.completions.with_raw_response.create(model=MODEL, extra_headers=headers, messages=[
        ASK, {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "and now?"}])
    assert later.parse().choices[0].message.content == "echo: and now?"
    events = [e["event"] for e in await compat.timeline(later.headers["x-request-id"])]
    assert "session_forked" not in events and "content_parts" in events
    await client.close()


async def test_an_image_on_a_vision_model_reaches_the_upstream_unchanged(start_compat):
    compat = await start_compat(extra_toml='vision_models = ["other-*"]\n')
    client = compat.aclient(max_retries=0)
    headers = {"X-BMO-Session-Id": "s-image-vision"}
    await client.chat.completions.create(model=OTHER_MODEL, messages=[ASK], extra_headers=headers)
    sent = agent_calls(compat)[-1]["messages"][-1]
    assert sent["content"] == ASK["content"]
    later = await client.chat.completions.create(model=OTHER_MODEL, extra_headers=headers, messages=[
        ASK, {"role": "assistant", "content": "echo: what is in this picture?"},
        {"role": "user", "content": "thanks"}])
    assert later.choices[0].message.content == "echo: thanks"
    history = agent_calls(compat)[-1]["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == [ASK["content"], "thanks"]
    await client.close()
