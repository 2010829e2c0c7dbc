"""The openai provider kind: streaming, retries before the first byte, typed errors, discovery."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bmo.agent.errors import NoProviderConfigured, UnknownModel, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import FakeUpstream, Reply, drop_connection, error, reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import free_port
from tests.agent.native_client import of_type

USER = [ChatMessage(role="user", content="hi")]


async def test_an_unreachable_upstream_is_a_clear_502_not_a_traceback(agent, tmp_path):
    port = free_port()  # nothing listens here
    toml = f'[providers.down]\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\nmodels = ["m"]\nmax_retries = 1\nretry_backoff_s = 0.01\n'
    bmo = await agent(toml=toml, providers=False)
    session = await bmo.create_session(model="down/m")
    async with bmo.http.post(bmo.url(f"/sessions/{session['id']}/messages"), json={"content": "hi"},
                             headers=bmo.server.headers()) as resp:
        body = await resp.json()
    assert resp.status == 502
    message = body["error"]["message"]
    assert "Cannot reach provider 'down'" in message and "2 attempt(s)" in message and "base_url" in message
    assert "Traceback" not in message and body["error"]["type"] == "upstream_error"
    with pytest.raises(UpstreamUnreachable):
        await bmo.co.complete("down/m", USER)
    run = (await bmo.co.store.run_rows(session["id"]))[0]
    assert (run["outcome"], run["error_status"]) == ("error", 502)


async def test_a_429_before_the_first_byte_is_retried_after_retry_after_then_succeeds(agent, fake_upstream):
    # The backoff is huge, so only honouring the short Retry-After lets this finish within the test's timeout.
    bmo = await agent(toml="", up=None)
    provider = bmo.co.providers["fake"]
    provider.options.retry_backoff_s = 600
    fake_upstream.script(error(429, "slow down", retry_after="0.05"), reply("made it"))
    session = await bmo.create_session()
    events = await bmo.run(session["id"], "hi")
    assert events[-1]["text"] == "made it"
    assert len(fake_upstream.chat_requests) == 2
    assert fake_upstream.chat_requests[0].body == fake_upstream.chat_requests[1].body


async def test_5xx_and_dropped_connections_are_retried_but_bounded(agent, fake_upstream):
    bmo = await agent()
    provider = bmo.co.providers["fake"]
    provider.options.retry_backoff_s = 0.01
    fake_upstream.script(error(503, "busy"), drop_connection(), reply("third time lucky"))
    assert (await bmo.co.complete("fake/fake-model", USER)).text == "third time lucky"
    fake_upstream.script(error(500, "boom"), error(500, "boom"), error(500, "still boom"), reply("unused"))
    with pytest.raises(UpstreamError) as failed:
        await bmo.co.complete("fake/fake-model", USER)
    # Issue 11: a 5xx body maps the internal network, so it is kept in ``detail``, not in the client's message.
    assert failed.value.status == 502 and "still boom" in failed.value.detail and "still boom" not in str(failed.value)
    assert fake_upstream.pending == 1  # 1 try + max_retries (2), no more


async def test_an_upstream_4xx_is_passed_on_with_its_message(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(error(400, "messages[0].content is too long"))
    async with bmo.http.post(bmo.url(f"/sessions/{session['id']}/messages"), json={"content": "hi"},
                             headers=bmo.server.headers()) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert "messages[0].content is too long" in body["error"]["message"]
    assert len(fake_upstream.chat_requests) == 1  # a 4xx is not retried


async def test_an_upstream_that_stalls_before_answering_times_out_as_504(agent, fake_upstream):
    bmo = await agent()
    bmo.co.providers["fake"].options.timeout_s = 0.3
    fake_upstream.script(reply("late", delay_s=30))
    with pytest.raises(UpstreamTimeout) as timed_out:
        await bmo.co.complete("fake/fake-model", USER)
    assert timed_out.value.status == 504 and "timeout_s" in str(timed_out.value)


async def test_complete_is_one_call_that_passes_tools_and_sampling_through(agent, fake_upstream):
    bmo = await agent()
    route = {"type": "function", "function": {"name": "bmo_route", "parameters": {"type": "object", "properties": {}}}}
    choice = {"type": "function", "function": {"name": "bmo_route"}}
    fake_upstream.script(reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""}, id="r1")],
                               usage={"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}))
    done = await bmo.co.complete("fake/fake-model", USER, tools=[route], tool_choice=choice,
                                 sampling={"temperature": 0.1, "max_tokens": 50, "seed": None})
    assert done.finish_reason == "tool_calls" and done.tool_calls[0].function.name == "bmo_route"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (11, 5)
    sent = fake_upstream.chat_requests[0].body
    assert sent["tool_choice"] == choice and sent["tools"] == [route]
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 50 and "seed" not in sent
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "fake-model"  # the provider prefix is BMO's, not the upstream's


async def test_usage_of_every_step_adds_up_in_the_run(agent, workspace, fake_upstream):
    (workspace / "x").write_text("x")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "x"})], usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
                         reply("ok", usage={"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}))
    events = await bmo.run(session["id"], "x")
    assert events[-1]["usage"] == {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}


async def test_models_are_discovered_when_the_config_lists_none(tmp_path, agent):
    async with FakeUpstream(models=["alpha", "beta"], api_key="sekret") as up:
        toml = provider_toml(up, "disc", models=[], extra='api_key_env = "DISC_KEY"\nheaders = {"X-Org" = "bmo"}\n')
        import os
        os.environ["DISC_KEY"] = "sekret"
        try:
            bmo = await agent(toml=toml, providers=False)
        finally:
            del os.environ["DISC_KEY"]
        assert bmo.co.model_ids() == ["disc/alpha", "disc/beta"]
        listing = up.requests[0]
        assert listing.path == "/v1/models" and listing.headers["Authorization"] == "Bearer sekret"
        assert listing.headers["X-Org"] == "bmo"
        with pytest.raises(UnknownModel) as unknown:
            bmo.co.check_model("disc/gamma")
        assert unknown.value.status == 404 and "disc/alpha" in str(unknown.value)


async def test_without_a_provider_the_server_starts_and_a_chat_says_how_to_add_one(agent):
    bmo = await agent(providers=False)
    assert bmo.co.model_ids() == []
    with pytest.raises(NoProviderConfigured):
        bmo.co.check_model("x/y")
    body = await bmo.request("POST", "/sessions", {}, status=503)
    assert "[providers." in body["error"]["message"] and body["error"]["param"] == "model"
    async with aiohttp.ClientSession() as http:
        async with http.get(bmo.server.url + "/healthz") as resp:
            assert resp.status == 200


async def test_reasoning_content_streams_as_reasoning_not_answer(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("42", reasoning="let me think"))
    events = await bmo.run(session["id"], "answer?")
    assert "".join(e["text"] for e in of_type(events, "reasoning.delta")) == "let me think"
    assert events[-1]["text"] == "42"


async def test_more_than_a_hundred_model_calls_are_open_at_once_by_default(fake_upstream):
    # aiohttp's default connector would hold the 101st call back until one of the first 100 ended.
    from bmo.agent.config import ProviderOptions
    from bmo.agent.providers.openai import OpenAIProvider

    calls = 110
    provider = OpenAIProvider("fake", ProviderOptions(base_url=fake_upstream.base_url, models=["fake-model"]))
    fake_upstream.script(*[reply("waiting", stall=True) for _ in range(calls)])

    async def first_delta() -> None:
        async for _ in provider.stream("fake-model", USER):
            await asyncio.Event().wait()  # hold the stream open until cancelled

    tasks = [asyncio.create_task(first_delta()) for _ in range(calls)]
    try:
        assert len(await fake_upstream.wait_requests(calls, timeout=30)) == calls
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await provider.close()


async def test_max_connections_sets_the_connection_limit_and_refuses_a_negative(fake_upstream):
    from bmo.agent.config import ProviderOptions
    from bmo.agent.providers.openai import OpenAIProvider

    provider = OpenAIProvider("capped", ProviderOptions(base_url=fake_upstream.base_url, max_connections=8))
    try:
        connector = provider._http().connector
        assert (connector.limit, connector.limit_per_host) == (8, 0)
    finally:
        await provider.close()
    with pytest.raises(ValueError, match=r"\[providers.bad\] max_connections"):
        OpenAIProvider("bad", ProviderOptions(base_url=fake_upstream.base_url, max_connections=-1))


async def test_tool_call_fragments_usage_and_reasoning_are_assembled_from_the_chunks(fake_upstream):
    from bmo.agent.config import ProviderOptions
    from bmo.agent.events import ReasoningDelta, TextDelta
    from bmo.agent.providers.base import ModelTurn
    from bmo.agent.providers.openai import OpenAIProvider

    provider = OpenAIProvider("fake", ProviderOptions(base_url=fake_upstream.base_url, models=["fake-model"]))
    fake_upstream.script(reply("Reading both. ", reasoning="two files", chunks=2,
                               tool_calls=[tool_call("read_file", {"path": "a.txt"}, id="c1"),
                                           tool_call("read_file", {"path": "b.txt"}, id="c2")],
                               usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}))
    try:
        items = [item async for item in provider.stream("fake-model", USER)]
    finally:
        await provider.close()
    turn = items[-1]
    assert isinstance(turn, ModelTurn)
    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == turn.text == "Reading both. "
    assert "".join(i.text for i in items if isinstance(i, ReasoningDelta)) == turn.reasoning == "two files"
    assert [(c.id, c.function.name, c.function.arguments) for c in turn.tool_calls] == [
        ("c1", "read_file", '{"path": "a.txt"}'), ("c2", "read_file", '{"path": "b.txt"}')]
    assert turn.finish_reason == "tool_calls"
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens, turn.usage.total_tokens) == (7, 3, 10)


async def test_an_sse_line_over_the_bound_is_a_502_naming_the_provider(agent, fake_upstream):
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply("x" * (600 * 1024), chunks=1))  # one data: line of about 600 KiB
    async with bmo.http.post(bmo.url(f"/sessions/{session['id']}/messages"), json={"content": "hi"},
                             headers=bmo.server.headers()) as resp:
        body = await resp.json()
    assert resp.status == 502, body
    message = body["error"]["message"]
    assert body["error"]["type"] == "upstream_error"
    assert "Provider 'fake'" in message and "max_sse_line_bytes" in message
    assert "Chunk too big" not in message and "ValueError" not in message and "xxxx" not in message
    run = (await bmo.co.store.run_rows(session["id"]))[0]
    assert (run["outcome"], run["error_status"]) == ("error", 502)


def test_max_sse_line_bytes_below_one_is_refused_naming_the_table():
    from bmo.agent.config import ProviderOptions
    from bmo.agent.providers.openai import OpenAIProvider

    with pytest.raises(ValueError, match=r"\[providers.bad\] max_sse_line_bytes must be 1 or more, got 0"):
        OpenAIProvider("bad", ProviderOptions(base_url="http://127.0.0.1:1/v1", max_sse_line_bytes=0))


async def test_an_sse_line_under_a_raised_bound_is_read(agent, fake_upstream):
    bmo = await agent()
    bmo.co.providers["fake"].options.max_sse_line_bytes = 1024 * 1024
    fake_upstream.script(reply("y" * (600 * 1024), chunks=1))
    assert (await bmo.co.complete("fake/fake-model", USER)).text == "y" * (600 * 1024)



async def test_data_lines_without_blank_lines_between_them_are_still_read_chunk_by_chunk(agent, fake_upstream):
    # A sloppy upstream: no blank line between chunks, so the parser joins them into one event's data.
    bmo = await agent()
    body = "".join(f"data: {_chunk(p)}\n" for p in "ab") + f"data: {_chunk('', 'stop')}\n\n"
    fake_upstream.script(Reply(raw_stream=body + "data: [DONE]\n\n"))
    turn = await bmo.co.complete("fake/fake-model", USER)
    assert (turn.text, turn.finish_reason) == ("ab", "stop")


async def test_an_upstream_framing_its_stream_with_crlf_and_comments_is_read(agent, fake_upstream):
    bmo = await agent()
    body = (": hello\r\n\r\n" + "".join(f"data: {_chunk(p)}\r\n\r\n" for p in ("cr", "lf"))
            + f"event: done\r\ndata: {_chunk('', 'stop')}\r\n\r\ndata: [DONE]\r\n\r\n")
    fake_upstream.script(Reply(raw_stream=body))
    turn = await bmo.co.complete("fake/fake-model", USER)
    assert (turn.text, turn.finish_reason) == ("crlf", "stop")


def _chunk(content: str, finish: str | None = None) -> str:
    return json.dumps({"choices": [{"delta": {"content": content}, "finish_reason": finish}]})
