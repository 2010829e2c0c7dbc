"""Open WebUI's background tasks get one direct model call, even while their chat is streaming."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
from owui_server import MODEL, TITLE_JSON, TOKEN, ledger_row

from bmo.agent import coordinator_of
from bmo_open_webui.tasks import is_background_task

CHAT_HEADER = "X-OpenWebUI-Chat-Id"
# What Open WebUI's title task sends (its default template, shortened), built from the chat so far.
TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n- Keep it short.\n"
    "### Output:\nJSON format: { \"title\": \"your concise title here\" }\n### Chat History:\n<chat_history>\n"
    "USER: what is the weather like, please hang\n</chat_history>"
)


async def _first_content_line(resp: aiohttp.ClientResponse) -> str:
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data: ") and '"content": "think' in line.replace('":"', '": "'):
            return line
    raise AssertionError("the stream ended before any content")


async def test_title_task_while_the_chat_streams_answers_at_once_with_one_model_call(bmo, upstream):
    chat_id = "9c1d7f00-aaaa-bbbb-cccc-000000000001"
    session_id = f"openwebui-{chat_id}@fake:fake-model"
    async with aiohttp.ClientSession() as http:
        stream = await http.post(
            f"{bmo.api}/chat/completions", headers=bmo.headers(**{CHAT_HEADER: chat_id}),
            json={"model": MODEL, "stream": True,
                  "messages": [{"role": "user", "content": "what is the weather like, please hang"}]},
        )
        try:
            assert stream.status == 200
            await asyncio.wait_for(_first_content_line(stream), 10)
            running = coordinator_of(bmo.host).active_run(session_id)
            assert running is not None  # the chat's run holds its session right now
            calls_before = len(upstream.chat_requests)

            sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
            raw = await asyncio.wait_for(sdk.chat.completions.with_raw_response.create(
                model=MODEL, stream=False, messages=[{"role": "user", "content": TITLE_PROMPT}],
                extra_headers={CHAT_HEADER: chat_id},
            ), 10)
            task = raw.parse()

            assert raw.http_response.status_code == 200
            assert task.choices[0].message.content == TITLE_JSON
            assert not task.choices[0].message.tool_calls
            # Exactly one upstream call, with the task prompt as is and no tools offered.
            assert len(upstream.chat_requests) == calls_before + 1
            sent = upstream.chat_requests[-1].body
            assert "tools" not in sent and "tool_choice" not in sent
            assert sent["messages"][-1]["content"] == TITLE_PROMPT
            # The chat's run was neither blocked nor disturbed, and the task joined no session.
            assert coordinator_of(bmo.host).active_run(session_id) is running and not running.done
            users = [m.content for m in await (await coordinator_of(bmo.host).get_session(session_id)).messages()
                     if m.role == "user"]
            assert users == ["what is the weather like, please hang"]

            row = await ledger_row(http, bmo, raw.headers["x-request-id"])
            assert row["kind"] == "task"
            assert row["outcome"] == "final_answer" and row["http_status"] == 200
            assert row["session_id"] == session_id
            # The posture tells tasks from chat turns, and so does the /openwebui report.
            posture = (await bmo.host.posture())["openai_compat"]
            assert posture["kinds"]["task"] == 1
            assert "task 1" in await bmo.host.render_slash("/openwebui")
        finally:
            stream.close()  # the hung chat: the client leaves, BMO cancels its run
        await asyncio.wait_for(running.wait(), 10)


async def test_ordinary_chat_rows_are_kind_chat(bmo):
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "### Task: looks like one, but streams"}], stream=False)
    async with aiohttp.ClientSession() as http:
        row = await ledger_row(http, bmo, raw.headers["x-request-id"])
    assert row["kind"] == "chat"


async def test_a_task_header_marks_any_prompt_as_a_task(bmo, upstream):
    # Open WebUI's emoji task has no "### Task:" prompt; a {{TASK}} header template names it anyway.
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    calls_before = len(upstream.chat_requests)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Reflect the speaker's mood with one emoji: hi"}],
        extra_headers={"X-OpenWebUI-Task": "emoji_generation", CHAT_HEADER: "emoji-chat"})
    assert len(upstream.chat_requests) == calls_before + 1  # no router call, no loop
    async with aiohttp.ClientSession() as http:
        row = await ledger_row(http, bmo, raw.headers["x-request-id"])
    assert row["kind"] == "task"
    assert await coordinator_of(bmo.host).get_session("openwebui-emoji-chat@fake:fake-model") is None


async def test_an_empty_task_header_is_an_ordinary_chat(bmo):
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], extra_headers={"X-OpenWebUI-Task": ""})
    async with aiohttp.ClientSession() as http:
        row = await ledger_row(http, bmo, raw.headers["x-request-id"])
    assert row["kind"] == "chat"


async def test_task_detection_can_be_switched_off(tmp_path, upstream, workspace):
    from owui_server import serve

    server = await serve(tmp_path, upstream, workspace, extra="[options.open_webui]\ndetect_tasks = false\n")
    try:
        sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
        raw = await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": TITLE_PROMPT}])
        async with aiohttp.ClientSession() as http:
            row = await ledger_row(http, server, raw.headers["x-request-id"])
        assert row["kind"] == "chat"
    finally:
        await server.stop()


def test_what_counts_as_a_task():
    task = {"role": "user", "content": TITLE_PROMPT}
    assert is_background_task({"messages": [task], "stream": False})
    assert is_background_task({"messages": [task]})  # stream defaults to false
    assert is_background_task({"messages": [{"role": "system", "content": "preset"}, task]})
    assert is_background_task({"messages": [{"role": "user", "content": [{"type": "text", "text": TITLE_PROMPT}]}]})
    assert not is_background_task({"messages": [task], "stream": True})
    assert not is_background_task({"messages": [task], "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert not is_background_task({"messages": [task, {"role": "assistant", "content": "x"}, task]})
    assert not is_background_task({"messages": [{"role": "user", "content": "### Task: no history block"}]})
    assert not is_background_task({"messages": [{"role": "user", "content": "hi <chat_history> ### Task:"}]})
    assert not is_background_task({"messages": "nope"})
    assert not is_background_task(None)
