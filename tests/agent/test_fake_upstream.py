"""The fake upstream speaks OpenAI well enough for the real SDK, and plays its script."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import openai
import pytest

from bmo.testing.fake_upstream import FakeUpstream, error, reply, tool_call
from bmo.testing.harness import free_port


def client(up: FakeUpstream, **kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.base_url, api_key="k", max_retries=0, **kw)


async def test_lists_models_for_the_sdk(fake_upstream):
    models = await client(fake_upstream).models.list()
    assert [m.id for m in models.data] == ["fake-model"]


async def test_echoes_the_last_user_message_when_nothing_is_scripted(fake_upstream):
    resp = await client(fake_upstream).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi there"}])
    assert resp.choices[0].message.content == "echo: hi there"
    assert resp.usage.total_tokens > 0


async def test_streams_scripted_text_in_chunks_with_usage(fake_upstream):
    fake_upstream.script(reply("abcdefghij", chunks=5))
    stream = await client(fake_upstream).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == "abcdefghij"
    assert len([p for p in pieces if p]) == 5
    assert finish == "stop" and usage is not None and usage.completion_tokens > 0


async def test_streams_tool_calls_as_indexed_deltas(fake_upstream):
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"}, id="c1"),
                                           tool_call("list_dir", {"path": "."})]))
    stream = await client(fake_upstream).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "x"}], stream=True)
    calls: dict[int, dict] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for d in choice.delta.tool_calls or []:
            entry = calls.setdefault(d.index, {"id": None, "name": "", "args": ""})
            entry["id"] = d.id or entry["id"]
            if d.function:
                entry["name"] += d.function.name or ""
                entry["args"] += d.function.arguments or ""
    assert finish == "tool_calls"
    assert calls[0]["id"] == "c1" and calls[0]["name"] == "read_file"
    assert json.loads(calls[0]["args"]) == {"path": "notes.txt"}
    assert calls[1]["name"] == "list_dir" and calls[1]["id"]


async def test_length_stop_and_errors_are_played_in_order(fake_upstream):
    fake_upstream.script(reply("partial", finish_reason="length"),
                         error(429, "slow down", retry_after=1), error(400, "bad field", code="bad"))
    c = client(fake_upstream)
    first = await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
    assert first.choices[0].finish_reason == "length"
    with pytest.raises(openai.RateLimitError) as rate:
        await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
    assert rate.value.response.headers["Retry-After"] == "1"
    with pytest.raises(openai.BadRequestError) as bad:
        await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["message"] == "bad field" and bad.value.code == "bad"
    assert fake_upstream.pending == 0


async def test_records_bodies_and_headers(fake_upstream):
    await client(fake_upstream).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "q"}], temperature=0.5)
    rec = fake_upstream.chat_requests[-1]
    assert rec.body["temperature"] == 0.5
    assert rec.headers["Authorization"] == "Bearer k"
    assert rec.messages == [{"role": "user", "content": "q"}]


async def test_notices_a_client_leaving_a_stalled_stream(fake_upstream):
    fake_upstream.script(reply("first words", stall=True))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(fake_upstream.base_url + "/chat/completions",
                               json={"model": "fake-model", "stream": True, "messages": []})
        line = await asyncio.wait_for(resp.content.readline(), 5)
        assert line.startswith(b"data: ")
        resp.close()
    assert await fake_upstream.wait_disconnect(timeout=5) == 1


async def test_delay_before_first_byte_trips_a_client_timeout(fake_upstream):
    fake_upstream.script(reply("late", delay_s=30))
    with pytest.raises(openai.APITimeoutError):
        await client(fake_upstream, timeout=0.3).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}])
    await fake_upstream.wait_disconnect(timeout=5)


def test_runs_out_of_process_and_takes_a_script_over_http(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bmo.testing.fake_upstream", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "fake upstream serving on" in proc.stdout.readline()
        sync = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_fake/script", method="POST",
                                     data=json.dumps([{"text": "scripted!"}]).encode())
        urllib.request.urlopen(req, timeout=5).read()
        resp = sync.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
        assert resp.choices[0].message.content == "scripted!"
        seen = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/requests", timeout=5).read())
        assert seen["requests"][-1]["body"]["messages"] == [{"role": "user", "content": "x"}]
    finally:
        proc.terminate()
        proc.wait(10)
