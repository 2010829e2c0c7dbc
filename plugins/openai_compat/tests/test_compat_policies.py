"""tool_policy, ambiguity_action and BMO's own tool activity, as a client sees them."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN, route_reply

from bmo.testing.fake_upstream import reply, tool_call

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def offered_tools(recorded) -> set[str]:
    return {t["function"]["name"] for t in recorded.body.get("tools") or []}


def agent_calls(compat):
    return [r for r in compat.up.chat_requests if "bmo_route" not in offered_tools(r)]


async def test_ambiguous_first_turn_with_ask_answers_with_the_question(compat):
    compat.model.route(route_reply("ambiguous", "Which file do you mean?"))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "fix it"}], extra_headers={"X-BMO-Session-Id": "s-clar"})
    assert raw.parse().choices[0].message.content == "Which file do you mean?"
    assert agent_calls(compat) == []  # no agent run, no tool
    router = compat.up.chat_requests[0].body
    assert router["tool_choice"] == {"type": "function", "function": {"name": "bmo_route"}}
    assert offered_tools(compat.up.chat_requests[0]) == {"bmo_route"}
    await compat.assert_outcome(raw.headers["x-request-id"], "clarification", 200)
    # The answer to the question continues the conversation; the router does not ask again.
    follow = await client.chat.completions.create(
        model=MODEL, extra_headers={"X-BMO-Session-Id": "s-clar"},
        messages=[{"role": "user", "content": "fix it"}, {"role": "assistant", "content": "Which file do you mean?"},
                  {"role": "user", "content": "notes.txt"}])
    assert follow.choices[0].message.content == "echo: notes.txt"
    assert compat.model.router_calls == 1
    sent = [m["content"] for m in agent_calls(compat)[0].body["messages"] if m["role"] == "user"]
    assert sent == ["fix it", "notes.txt"]
    await client.close()


async def test_clarification_streams_too(compat):
    compat.model.route(route_reply("ambiguous", "Which one?"))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "do it"}],
                                                  stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Which one?"
    assert chunks[-1].usage is not None
    await client.close()


async def test_ambiguous_with_research_runs_with_read_only_tools(start_compat):
    compat = await start_compat(ambiguity_action="research")
    compat.model.route(route_reply("ambiguous", "Which?"))
    client = compat.aclient()
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "look around"}])
    assert answer.choices[0].message.content == "echo: look around"
    tools = offered_tools(agent_calls(compat)[0])
    assert "read_file" in tools and "write_file" not in tools and "run_shell" not in tools
    await client.close()


async def test_code_runs_the_full_agent_without_asking_the_router(start_compat):
    compat = await start_compat(ambiguity_action="code")
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "change things"}])
    tools = offered_tools(agent_calls(compat)[0])
    assert {"read_file", "write_file"} <= tools
    # Every router decision would run the full agent under "code", so no router call is made.
    assert len(compat.up.chat_requests) == len(agent_calls(compat)) == 1
    await client.close()


async def test_a_provider_with_the_ambiguity_router_off_is_not_asked_and_its_first_turn_runs(start_compat):
    # Measured on the 0.5B local model (docs/local-model.md): asked, it called "What is 2+3?" ambiguous and
    # asked it back; kind = "llamacpp" turns the router off by default.
    compat = await start_compat(extra_toml="ambiguity_router = false\n")  # lands in the [providers.fake] table
    compat.model.route(route_reply("ambiguous", "What is 2+3?"))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+3?"}])
    assert raw.parse().choices[0].message.content == "echo: What is 2+3?"
    assert compat.model.router_calls == 0 and len(compat.up.chat_requests) == 1
    await compat.assert_outcome(raw.headers["x-request-id"], "final_answer", 200)
    answer = await client.responses.create(model=MODEL, input="What is 2+3?")
    assert answer.output_text == "echo: What is 2+3?" and compat.model.router_calls == 0
    await client.close()


async def test_bmo_tool_activity_streams_as_reasoning_never_as_tool_calls(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), reply("It says 42."))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "read notes"}],
                                                  stream=True)
    request_id = stream.response.headers["x-request-id"]
    chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert "read_file(notes.txt)" in reasoning
    assert all(not d.tool_calls for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(d.content or "" for d in deltas) == "It says 42."
    names = [e["event"] for e in await compat.timeline(request_id)]
    assert "tool_started" in names and "tool_finished" in names
    # The model saw the file's content as the tool result.
    assert any("the answer is 42" in (m.get("content") or "") for m in compat.up.chat_requests[-1].body["messages"])
    await client.close()


async def test_chat_only_ignores_client_tools_and_never_returns_tool_calls(compat):
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL])
    message = raw.parse().choices[0].message
    assert message.tool_calls is None and message.content == "echo: weather?"
    assert "get_weather" not in offered_tools(agent_calls(compat)[0])
    names = [e["event"] for e in await compat.timeline(raw.headers["x-request-id"])]
    assert "client_tools_ignored" in names
    await client.close()


async def test_chat_only_permission_challenge_is_denied_after_the_bounded_wait(start_compat):
    compat = await start_compat(permission_timeout_s=0.5)
    compat.model.answer(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "x"})]),
                        reply("I could not write the file."))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "write"}],
                                                  stream=True)
    request_id = stream.response.headers["x-request-id"]
    chunks = [c async for c in stream]
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert "permission to run write_file" in reasoning
    assert not (compat.workspace / "out.txt").exists()
    events = await compat.timeline(request_id)
    decided = [e for e in events if e["event"] == "permission_decided"]
    assert decided and decided[0]["detail"]["decision"] == "deny"
    await client.close()


async def test_auto_approve_client_tool_round_trip_on_a_session(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"})]), reply("Oslo: sunny."))
    client = compat.aclient()
    headers = {"X-BMO-Session-Id": "s-tools"}
    messages = [{"role": "user", "content": "weather in Oslo?"}]
    stream = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True,
                                                  extra_headers=headers)
    chunks = [c async for c in stream]
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == \
        [(0, "get_weather", {"city": "Oslo"})]
    assert calls[0].id and calls[0].type == "function"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "get_weather" in offered_tools(agent_calls(compat)[0])
    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0].id, "type": "function", "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21C"}]
    done = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                                extra_headers=headers)
    assert done.choices[0].message.content == "Oslo: sunny."
    assert done.choices[0].finish_reason == "stop"
    sent = agent_calls(compat)[-1].body["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny, 21C"
    assert sum(1 for m in sent if m["role"] == "user") == 1  # the history was not duplicated
    await client.close()


async def test_auto_approve_client_tool_call_non_streamed(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Rome"})]))
    client = compat.aclient()
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Rome?"}],
                                                  tools=[WEATHER_TOOL])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    await client.close()


async def test_auto_approve_runs_bmo_tools_without_a_challenge(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "hi"})]),
                        reply("Written."))
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "write"}])
    assert raw.parse().choices[0].message.content == "Written."
    assert (compat.workspace / "out.txt").read_text() == "hi"
    decided = [e for e in await compat.timeline(raw.headers["x-request-id"]) if e["event"] == "permission_decided"]
    assert all(e["detail"]["decided_by"] == "policy" for e in decided)
    await client.close()


async def test_recovery_failed_when_the_model_stays_silent_after_tools(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), reply(""), reply(""))
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "read"}])
    assert err.value.status_code == 502 and err.value.body["code"] == "recovery_failed"
    await compat.assert_outcome(err.value.request_id, "recovery_failed", 502, level="warn")
    await client.close()


async def test_keepalive_comments_flow_during_silence_and_the_sdk_ignores_them(compat):
    compat.model.answer(reply("late answer", chunks=2, chunk_delay_s=0.6))
    async with aiohttp.ClientSession() as http:
        async with http.post(compat.api + "/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"model": MODEL, "messages": [{"role": "user", "content": "slow"}],
                                   "stream": True}) as response:
            body = (await response.read()).decode()
    assert ": keep-alive\n\n" in body
    assert body.rstrip().endswith("data: [DONE]")
    compat.model.answer(reply("late again", chunks=2, chunk_delay_s=0.6))
    client = compat.aclient()
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "slow"}],
                                                  stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "late again"
    await client.close()
