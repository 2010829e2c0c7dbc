"""Issue 11: past ``[options.http_server] max_concurrent_streams`` a new stream is refused cleanly (503 in the
envelope, Retry-After) before any run starts, and the streams already open finish."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bmo.server.capacity import capacity_of
from bmo.testing.fake_upstream import FakeUpstream, reply
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

TOKEN = "cap-token"
LIMIT = {"BMO_OPTIONS__HTTP_SERVER__MAX_CONCURRENT_STREAMS": "2"}


@pytest.fixture
async def server(tmp_path):
    async with FakeUpstream() as up:
        toml = (f'[agent]\nworkspace = "{tmp_path}"\n[options.openai_compat]\nenabled = true\n'
                f'ambiguity_action = "code"\n' + provider_toml(up, extra="max_retries = 0\n"))
        srv = await start_server(tmp_path / "data", config_toml=toml, token=TOKEN, load_plugins="openai_compat",
                                 env=LIMIT)
        try:
            yield srv, up
        finally:
            await srv.stop()


def _chat_body(stream: bool = True) -> dict:
    return {"model": "fake/fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def test_a_third_concurrent_stream_gets_a_503_envelope_and_the_first_two_finish(server):
    srv, up = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    up.script(reply("slow one", chunks=4, chunk_delay_s=0.3), reply("slow two", chunks=4, chunk_delay_s=0.3))
    async with aiohttp.ClientSession() as http:
        first = await http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers)
        second = await http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers)
        assert (first.status, second.status) == (200, 200)
        assert capacity_of(srv.host).active == 2
        async with http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers) as third:
            body = await third.json()
            assert third.status == 503 and third.headers["Retry-After"] == "1"
            assert third.headers["x-should-retry"] == "true"
            assert body["error"]["code"] == "too_many_streams" and "max_concurrent_streams" in body["error"]["message"]
            refused_id = third.headers["X-Request-Id"]
        assert len(up.chat_requests) == 2  # the refused stream started no run
        texts = [await first.text(), await second.text()]
        first.release()
        second.release()
    for text, expected in zip(texts, ("slow one", "slow two"), strict=True):
        pieces = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
        assert "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p["choices"]) == expected
        assert text.rstrip().endswith("data: [DONE]")
    ledger = srv.host.state["openai_compat"].ledger
    await ledger.drain()
    row = await ledger.get_run(refused_id)
    assert (row["http_status"], row["status"]) == (503, "finished")
    assert capacity_of(srv.host).active == 0 and capacity_of(srv.host).refused == 1


async def test_non_streamed_requests_and_freed_slots_are_not_refused(server):
    srv, up = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    up.script(reply("slow a", chunk_delay_s=0.5, chunks=4), reply("slow b", chunk_delay_s=0.5, chunks=4))
    async with aiohttp.ClientSession() as http:
        streams = [await http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers) for _ in range(2)]
        assert capacity_of(srv.host).active == 2  # both slots taken
        async with http.post(srv.api + "/chat/completions", json=_chat_body(stream=False), headers=headers) as plain:
            assert plain.status == 200  # a non-streamed answer holds no stream slot
        for resp in streams:
            await resp.read()
            resp.release()
        async with asyncio.timeout(5):
            while capacity_of(srv.host).active:
                await asyncio.sleep(0.02)
        async with http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers) as again:
            assert again.status == 200 and (await again.text()).rstrip().endswith("[DONE]")


@pytest.mark.parametrize("path, body", [
    ("/responses", {"model": "fake/fake-model", "input": "hi", "stream": True}),
    ("/sessions/{sid}/messages", {"content": "hi", "stream": True}),
])
async def test_every_kind_of_stream_counts_toward_the_limit(server, path, body):
    srv, up = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    up.script(reply("slow a", chunk_delay_s=0.5, chunks=4), reply("slow b", chunk_delay_s=0.5, chunks=4))
    async with aiohttp.ClientSession() as http:
        async with http.post(srv.api + "/sessions", json={}, headers=headers) as created:
            sid = (await created.json())["id"]
        streams = [await http.post(srv.api + "/chat/completions", json=_chat_body(), headers=headers) for _ in range(2)]
        async with http.post(srv.api + path.format(sid=sid), json=body, headers=headers) as refused:
            assert refused.status == 503 and (await refused.json())["error"]["code"] == "too_many_streams"
            assert refused.headers["Retry-After"] == "1"
        assert len(up.chat_requests) == 2
        for resp in streams:
            await resp.read()
            resp.release()
