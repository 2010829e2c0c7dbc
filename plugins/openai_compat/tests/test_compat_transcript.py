"""The client's transcript is the truth: regenerate, edit, continue, stop and resend send the upstream what the client shows."""

from __future__ import annotations

import asyncio

import openai
import pytest
from compat_support import MODEL, is_router_call

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import error, reply, tool_call

pytestmark = pytest.mark.asyncio


def session_headers(session_id: str) -> dict:
    return {"X-BMO-Session-Id": session_id}


def upstream_view(compat) -> list[tuple]:
    """The last agent call the fake model got, as (role, content or tool names), system prompt left out."""
    body = [r for r in compat.up.chat_requests if not is_router_call(r.body)][-1].body
    out = []
    for m in body["messages"]:
        if m["role"] == "system":
            continue
        if m.get("tool_calls"):
            out.append((m["role"], "calls:" + ",".join(c["function"]["name"] for c in m["tool_calls"])))
        elif m["role"] == "tool":
            out.append(("tool", "result"))
        else:
            out.append((m["role"], m["content"]))
    return out


async def two_turns_with_a_tool(compat, session_id: str):
    """Turn one runs read_file inside BMO, turn two is a plain echo; returns (client, first answer)."""
    client = compat.aclient()
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), reply("The notes say 42."))
    first = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                                 extra_headers=session_headers(session_id))
    answer = first.choices[0].message.content
    assert answer == "The notes say 42."
    await client.chat.completions.create(
        model=MODEL, extra_headers=session_headers(session_id),
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "two"}])
    return client, answer


TURN_ONE = [("user", "one"), ("assistant", "calls:read_file"), ("tool", "result"), ("assistant", "The notes say 42.")]


async def forks_of(compat, request_id: str) -> list[dict]:
    return [e["detail"] for e in await compat.timeline(request_id) if e["event"] == "session_forked"]


async def test_regenerate_sends_the_history_once_without_the_discarded_answer(compat):
    client, answer = await two_turns_with_a_tool(compat, "s-regen")
    compat.model.answer(reply("another two"))
    again = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-regen"),
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "two"}])
    assert again.parse().choices[0].message.content == "another two"
    # BMO's own tool call of turn one is still there; "echo: two" (discarded) and a second "two" are not.
    assert upstream_view(compat) == TURN_ONE + [("user", "two")]
    forks = await forks_of(compat, again.headers["x-request-id"])
    assert len(forks) == 1 and forks[0]["reason"] == "regenerate" and forks[0]["set_aside"] == 1
    history = [(m.role, m.content) for m in await (await coordinator_of(compat.host).get_session("s-regen")).messages()]
    assert ("assistant", "echo: two") not in history and history[-1] == ("assistant", "another two")
    await client.close()


async def test_edit_and_resend_forks_at_the_edited_message(compat):
    client, answer = await two_turns_with_a_tool(compat, "s-edit")
    edited = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-edit"),
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "two, edited"}])
    assert edited.parse().choices[0].message.content == "echo: two, edited"
    assert upstream_view(compat) == TURN_ONE + [("user", "two, edited")]
    forks = await forks_of(compat, edited.headers["x-request-id"])
    assert [f["reason"] for f in forks] == ["edit"] and forks[0]["set_aside"] == 2
    await client.close()


async def test_continue_streams_only_the_continuation(compat):
    client, answer = await two_turns_with_a_tool(compat, "s-cont")
    compat.model.answer(reply(" And more.", chunks=2))
    stream = await client.chat.completions.create(
        model=MODEL, extra_headers=session_headers("s-cont"), stream=True,
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "two"}, {"role": "assistant", "content": "echo: two"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == " And more."
    view = upstream_view(compat)
    assert view[:-1] == TURN_ONE + [("user", "two"), ("assistant", "echo: two")]
    assert view[-1][0] == "user" and "Continue" in view[-1][1]  # the continue prompt, never persisted
    # The next turn's transcript carries the whole answer, and matches: nothing forks.
    nxt = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-cont"),
        messages=[{"role": "user", "content": "one"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "two"}, {"role": "assistant", "content": "echo: two And more."},
                  {"role": "user", "content": "three"}])
    assert nxt.parse().choices[0].message.content == "echo: three"
    assert await forks_of(compat, nxt.headers["x-request-id"]) == []
    # Stored as two messages, sent as the one answer the client shows: strict templates refuse two in a row.
    assert upstream_view(compat)[-2:] == [("assistant", "echo: two And more."), ("user", "three")]
    await client.close()


async def test_a_stateless_request_ending_in_an_answer_is_continued(compat):
    client = compat.aclient()
    compat.model.answer(reply("ld!"))
    done = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "say hello world"},
                               {"role": "assistant", "content": "Hello, wor"}])
    assert done.choices[0].message.content == "ld!"
    view = upstream_view(compat)
    assert view[:2] == [("user", "say hello world"), ("assistant", "Hello, wor")]
    assert view[2][0] == "user" and "Continue" in view[2][1]
    await client.close()


async def test_resend_after_an_upstream_failure_sends_the_message_once(compat):
    client = compat.aclient()
    first = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                                 extra_headers=session_headers("s-fail"))
    chat = [{"role": "user", "content": "one"}, {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "two"}]
    compat.model.answer(error(500, "upstream broke"))
    with pytest.raises(openai.APIStatusError):
        await client.with_options(max_retries=0).chat.completions.create(
            model=MODEL, messages=chat, extra_headers=session_headers("s-fail"))
    again = await client.chat.completions.create(model=MODEL, messages=chat, extra_headers=session_headers("s-fail"))
    assert again.choices[0].message.content == "echo: two"
    assert upstream_view(compat) == [("user", "one"), ("assistant", "echo: one"), ("user", "two")]
    await client.close()


async def test_a_delta_client_resending_a_failed_message_does_not_duplicate_it(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                         extra_headers=session_headers("s-delta"))
    compat.model.answer(error(500, "upstream broke"))
    with pytest.raises(openai.APIStatusError):
        await client.with_options(max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "two"}], extra_headers=session_headers("s-delta"))
    again = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "two"}],
                                                 extra_headers=session_headers("s-delta"))
    assert again.choices[0].message.content == "echo: two"
    assert upstream_view(compat) == [("user", "one"), ("assistant", "echo: one"), ("user", "two")]
    await client.close()


async def test_stop_then_send_keeps_the_partial_answer_the_client_saw(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                         extra_headers=session_headers("s-stop"))
    compat.model.answer(reply("A long answer that", chunks=["A long ", "answer that"], stall=True))
    chat = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "echo: one"},
            {"role": "user", "content": "tell me more"}]
    stream = await client.chat.completions.create(model=MODEL, messages=chat, stream=True,
                                                  extra_headers=session_headers("s-stop"))
    seen = ""
    async for chunk in stream:
        seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if seen == "A long answer that":
            break
    await stream.close()  # the user pressed Stop
    coordinator = coordinator_of(compat.host)
    async with asyncio.timeout(10):
        while coordinator.active_run("s-stop") is not None:
            await asyncio.sleep(0.05)
    nxt = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-stop"),
        messages=chat + [{"role": "assistant", "content": seen}, {"role": "user", "content": "go on"}])
    assert nxt.parse().choices[0].message.content == "echo: go on"
    assert upstream_view(compat) == [("user", "one"), ("assistant", "echo: one"), ("user", "tell me more"),
                                     ("assistant", "A long answer that"), ("user", "go on")]
    assert await forks_of(compat, nxt.headers["x-request-id"]) == []
    rows = await compat.host.db.fetchall("SELECT interrupted FROM session_messages WHERE session_id = 's-stop'"
                                         " AND role = 'assistant' ORDER BY seq")
    assert [r["interrupted"] for r in rows] == [0, 1, 0]
    await client.close()


async def test_concurrent_first_requests_on_a_new_session_never_fail_with_500(compat):
    client = compat.aclient(max_retries=0)
    compat.model.answer(reply("first", chunk_delay_s=0.2, chunks=2), reply("second"))

    async def ask(text: str) -> int:
        try:
            await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}],
                                                 extra_headers=session_headers("s-race"))
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    statuses = await asyncio.gather(ask("a"), ask("b"))
    assert sorted(statuses) in ([200, 200], [200, 409]), statuses
    await client.close()


async def test_is_session_reuse_is_false_on_the_request_that_creates_the_session(compat):
    client = compat.aclient()
    first = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "one"}], extra_headers=session_headers("s-new"))
    second = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "two"}], extra_headers=session_headers("s-new"))
    assert (await compat.row(first.headers["x-request-id"]))["is_session_reuse"] is False
    assert (await compat.row(second.headers["x-request-id"]))["is_session_reuse"] is True
    await client.close()


async def test_the_transcript_header_makes_user_only_messages_a_full_transcript(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                         extra_headers=session_headers("s-full"))
    edited = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "one, edited"}],
        extra_headers={**session_headers("s-full"), "X-BMO-Transcript": "full"})
    assert edited.parse().choices[0].message.content == "echo: one, edited"
    assert upstream_view(compat) == [("user", "one, edited")]
    assert [f["reason"] for f in await forks_of(compat, edited.headers["x-request-id"])] == ["edit"]
    await client.close()


async def test_an_unknown_transcript_mode_is_a_400_naming_the_header(compat):
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one"}],
                                             extra_headers={**session_headers("s-mode"), "X-BMO-Transcript": "some"})
    assert err.value.body["param"] == "X-BMO-Transcript"
    await client.close()


async def test_a_permission_wait_is_said_in_the_answer_and_kept_so_the_next_turn_matches(start_compat):
    compat = await start_compat(permission_timeout_s=0.3)
    compat.model.answer(reply(tool_calls=[tool_call("write_file", {"path": "out.txt", "content": "x"})]),
                        reply("I could not write the file."))
    client = compat.aclient()
    first = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "write"}],
                                                 extra_headers=session_headers("s-wait"))
    answer = first.choices[0].message.content
    assert "waiting up to 0.3 s for permission to run write_file" in answer
    assert "bmo tui --session s-wait" in answer and answer.endswith("I could not write the file.")
    nxt = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-wait"),
        messages=[{"role": "user", "content": "write"}, {"role": "assistant", "content": answer},
                  {"role": "user", "content": "ok"}])
    assert nxt.parse().choices[0].message.content == "echo: ok"
    assert await forks_of(compat, nxt.headers["x-request-id"]) == []
    await client.close()
