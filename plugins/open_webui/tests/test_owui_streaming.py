"""What Open WebUI sees while BMO works: tool progress as reasoning, client tools, keep-alives, errors."""

from __future__ import annotations

import aiohttp
import openai
from owui_server import MODEL, TOKEN, serve, sse_events

from bmo.testing.fake_upstream import reply, tool_call

CHAT = {"X-OpenWebUI-Chat-Id": "stream-chat"}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


async def test_bmo_tool_activity_streams_as_reasoning_never_as_tool_calls(bmo, upstream):
    upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]),
                    reply("The notes say 42.", chunks=3))
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    stream = await sdk.chat.completions.create(
        model=MODEL, stream=True, messages=[{"role": "user", "content": "what do my notes say?"}], extra_headers=CHAT)
    reasoning, content, tool_deltas, finish = "", "", [], None
    async for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            content += delta.content or ""
            tool_deltas += delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert "read_file" in reasoning and "notes.txt" in reasoning
    assert content == "The notes say 42."
    assert tool_deltas == [] and finish == "stop"
    # The tool really ran: its result went back to the model.
    tool_results = [m for m in upstream.chat_requests[-1].messages if m["role"] == "tool"]
    assert "the answer is 42" in tool_results[0]["content"]


async def test_client_tools_round_trip_under_auto_approve(bmo, upstream):
    upstream.script(reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"}, id="call_w1")]))
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    question = {"role": "user", "content": "weather in Oslo?"}
    stream = await sdk.chat.completions.create(
        model=MODEL, stream=True, messages=[question], tools=[WEATHER_TOOL], extra_headers=CHAT)
    calls: dict[int, dict] = {}
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = (call.function.name if call.function else None) or entry["name"]
                entry["arguments"] += (call.function.arguments if call.function else None) or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert calls == {0: {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}}

    # Open WebUI runs the tool and sends the result back in the same chat.
    upstream.script(reply("Sunny in Oslo."))
    answer = await sdk.chat.completions.create(model=MODEL, tools=[WEATHER_TOOL], extra_headers=CHAT, messages=[
        question,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21 C"},
    ])
    assert answer.choices[0].message.content == "Sunny in Oslo."
    sent = upstream.chat_requests[-1].messages
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21 C"} or (
        sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny, 21 C")
    assert sum(1 for m in sent if m["role"] == "user") == 1  # one conversation, not a restart


async def test_silent_stretches_carry_sse_keepalive_comments(bmo, upstream):
    # keepalive_interval_s is 0.05 in these tests; the model pauses 0.6 s between pieces.
    upstream.script(reply("slow but sure", chunks=3, chunk_delay_s=0.6))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{bmo.api}/chat/completions", headers=bmo.headers(**CHAT), json={
                "model": MODEL, "stream": True, "messages": [{"role": "user", "content": "take your time"}]}) as resp:
            assert resp.status == 200
            body = (await resp.read()).decode()
    lines = [line for line in body.splitlines() if line]
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    comments = [i for i, line in enumerate(lines) if line.startswith(":")]
    assert any(i > first_data for i in comments)  # pings while the answer was under way
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in sse_events(body) if e.get("choices")) \
        == "slow but sure"
    assert lines[-1] == "data: [DONE]"


async def test_an_upstream_failure_mid_stream_arrives_as_an_error_event(tmp_path, upstream, workspace):
    server = await serve(tmp_path, upstream, workspace, upstream_timeout_s=1.5)
    try:
        upstream.script(reply("half an ans", chunks=2, stall=True))
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.api}/chat/completions", headers=server.headers(**CHAT), json={
                    "model": MODEL, "stream": True, "messages": [{"role": "user", "content": "go"}]}) as resp:
                assert resp.status == 200  # the stream had started; the failure can only be an event now
                body = (await resp.read()).decode()
        events = sse_events(body)
        streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
        assert streamed == "half an ans"
        errors = [e["error"] for e in events if "error" in e]
        assert len(errors) == 1 and errors[0]["message"]
        assert set(errors[0]) >= {"message", "type", "code"}
    finally:
        await server.stop()
