"""An Open WebUI chat id maps to one BMO session; temporary chats stay ephemeral."""

from __future__ import annotations

import openai
from owui_server import MODEL, TOKEN

from bmo.agent import coordinator_of

CHAT_HEADER = "X-OpenWebUI-Chat-Id"


def client(bmo) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)


async def ask(sdk, messages, headers):
    raw = await sdk.chat.completions.with_raw_response.create(model=MODEL, messages=messages, extra_headers=headers)
    return raw.headers, raw.parse()


async def test_same_chat_id_twice_lands_in_one_session(bmo, upstream):
    sdk = client(bmo)
    chat = {CHAT_HEADER: "0f3c2a9e-5b1d-4c7e-9a8f-1234567890ab"}
    first_headers, first = await ask(sdk, [{"role": "user", "content": "hello bmo"}], chat)
    history = [{"role": "user", "content": "hello bmo"},
               {"role": "assistant", "content": first.choices[0].message.content},
               {"role": "user", "content": "and again"}]
    second_headers, second = await ask(sdk, history, chat)

    session_id = "openwebui-0f3c2a9e-5b1d-4c7e-9a8f-1234567890ab@fake:fake-model"
    assert first_headers["x-bmo-session-id"] == session_id
    assert second_headers["x-bmo-session-id"] == session_id
    assert second.choices[0].message.content == "echo: and again"
    session = await coordinator_of(bmo.host).get_session(session_id)
    assert session is not None and not session.ephemeral
    users = [m.content for m in await session.messages() if m.role == "user"]
    assert users == ["hello bmo", "and again"]  # the re-sent first turn was not appended twice
    # The model saw the whole conversation on the second turn, from BMO's own history.
    last = upstream.chat_requests[-1].messages
    assert [m["content"] for m in last if m["role"] == "user"] == ["hello bmo", "and again"]


async def test_different_chats_get_different_sessions(bmo):
    sdk = client(bmo)
    a, _ = await ask(sdk, [{"role": "user", "content": "one"}], {CHAT_HEADER: "chat-a"})
    b, _ = await ask(sdk, [{"role": "user", "content": "two"}], {CHAT_HEADER: "chat-b"})
    assert a["x-bmo-session-id"] == "openwebui-chat-a@fake:fake-model"
    assert b["x-bmo-session-id"] == "openwebui-chat-b@fake:fake-model"


async def test_explicit_bmo_session_header_wins_over_the_chat_id(bmo):
    sdk = client(bmo)
    headers, _ = await ask(sdk, [{"role": "user", "content": "hi"}],
                           {CHAT_HEADER: "chat-c", "X-BMO-Session-Id": "mine"})
    assert headers["x-bmo-session-id"] == "mine"
    assert await coordinator_of(bmo.host).get_session("openwebui-chat-c@fake:fake-model") is None


async def test_temporary_chat_ids_stay_ephemeral(bmo, upstream):
    sdk = client(bmo)
    for chat_id in ("temporary:7d1e", "local:7d1e"):
        for text in ("first", "second"):
            headers, answer = await ask(sdk, [{"role": "user", "content": text}], {CHAT_HEADER: chat_id})
            assert answer.choices[0].message.content == f"echo: {text}"
            assert "x-bmo-session-id" not in headers
            # Each request's conversation is only what it carried: nothing was kept between them.
            assert [m["content"] for m in upstream.chat_requests[-1].messages if m["role"] == "user"] == [text]
    for session_id in ("openwebui-temporary:7d1e@fake:fake-model", "openwebui-local:7d1e@fake:fake-model", "openwebui-7d1e@fake:fake-model"):
        assert await coordinator_of(bmo.host).get_session(session_id) is None


async def test_unsafe_chat_id_is_hashed_into_a_valid_session_id(bmo):
    sdk = client(bmo)
    headers, _ = await ask(sdk, [{"role": "user", "content": "x"}], {CHAT_HEADER: "chat with spaces/and slashes"})
    session_id = headers["x-bmo-session-id"]
    assert session_id.startswith("openwebui-sha256-") and " " not in session_id
    again, _ = await ask(sdk, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "echo: x"},
                               {"role": "user", "content": "y"}], {CHAT_HEADER: "chat with spaces/and slashes"})
    assert again["x-bmo-session-id"] == session_id


async def test_custom_chat_id_header_and_prefix_from_config(tmp_path, upstream, workspace):
    from owui_server import serve

    server = await serve(tmp_path, upstream, workspace, extra=(
        "[options.open_webui]\nchat_id_headers = [\"X-Chat\", \"X-OpenWebUI-Chat-Id\"]\nsession_prefix = \"owui:\"\n"))
    try:
        sdk = client(server)
        headers, _ = await ask(sdk, [{"role": "user", "content": "hi"}], {"X-Chat": "abc"})
        assert headers["x-bmo-session-id"] == "owui:abc@fake:fake-model"
    finally:
        await server.stop()
