"""An Open WebUI chat's session belongs to the user Open WebUI forwarded (issue 11, point 2)."""

from __future__ import annotations

import openai
import pytest
from owui_server import MODEL, TOKEN, serve

from bmo.agent import coordinator_of


def user(email: str, chat_id: str) -> dict[str, str]:
    return {"X-OpenWebUI-User-Email": email, "X-OpenWebUI-Chat-Id": chat_id}


async def test_another_user_cannot_continue_a_chat_by_sending_its_id(tmp_path, upstream, workspace):
    server = await serve(tmp_path, upstream, workspace, env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
    try:
        first = await sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "ada's secret plan"}],
            extra_headers=user("ada@example.org", "chat-1"))
        assert first.choices[0].message.content == "echo: ada's secret plan"
        with pytest.raises(openai.NotFoundError) as err:
            await sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "what was the plan?"}],
                extra_headers=user("eve@example.org", "chat-1"))
        assert err.value.body["code"] == "session_not_found"
        session = await coordinator_of(server.host).get_session("openwebui-chat-1@fake:fake-model")
        assert session.created_by == "ada@example.org" and len(await session.messages()) == 2
        again = await sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "ada's secret plan"},
                                   {"role": "assistant", "content": first.choices[0].message.content},
                                   {"role": "user", "content": "go on"}],
            extra_headers=user("ada@example.org", "chat-1"))
        assert again.choices[0].message.content == "echo: go on"
    finally:
        await sdk.close()
        await server.stop()
