"""Sessions: reuse, the queued 409, resuming another request's stream, disconnects, model overrides."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from compat_support import MODEL, OTHER_MODEL, open_stream_until

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply


def session_headers(session_id: str, **extra) -> dict:
    return {"X-BMO-Session-Id": session_id, **extra}


async def test_session_reuse_appends_only_the_trailing_messages(compat):
    client = compat.aclient()
    first = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"}],
        extra_headers=session_headers("s-reuse"))
    assert first.headers["x-bmo-session-id"] == "s-reuse"
    answer = first.parse().choices[0].message.content
    second = await client.chat.completions.with_raw_response.create(
        model=MODEL, extra_headers=session_headers("s-reuse"),
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"},
                  {"role": "assistant", "content": answer}, {"role": "user", "content": "two"}])
    assert second.parse().choices[0].message.content == "echo: two"
    session = await coordinator_of(compat.host).get_session("s-reuse")
    history = [(m.role, m.content) for m in await session.messages()]
    assert history.count(("user", "one")) == 1 and history.count(("system", "be brief")) == 1
    assert history[-1] == ("assistant", "echo: two")
    action = await compat.assert_outcome(second.headers["x-request-id"], "final_answer", 200)
    assert action["is_session_reuse"] is True and action["session_id"] == "s-reuse"
    fired = await compat.records("openai_compat.fired", request_id=second.headers["x-request-id"])
    assert fired[0]["session_id"] == "s-reuse" and fired[0]["is_session_reuse"] is True
    # The router asked only on the session's first turn.
    assert compat.model.router_calls == 1
    await client.close()


async def test_second_request_on_a_busy_session_is_queued_not_retried_and_can_resume(compat):
    compat.model.answer(reply("slow and steady wins", chunks=4, chunk_delay_s=0.3))
    client = compat.aclient(max_retries=3)
    first = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True, extra_headers=session_headers("s-busy"))
    first_id = first.response.headers["x-request-id"]
    with pytest.raises(openai.ConflictError) as err:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "me too"}], extra_headers=session_headers("s-busy"))
    assert err.value.body["code"] == "queued" and err.value.body["running_request_id"] == first_id
    assert err.value.response.headers["x-should-retry"] == "false"
    queued_id = err.value.request_id
    resumed = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "me too"}], stream=True,
        extra_headers=session_headers("s-busy", **{"X-BMO-Resume": first_id}))
    resumed_id = resumed.response.headers["x-request-id"]
    resumed_text = "".join([c.choices[0].delta.content or "" async for c in resumed if c.choices])
    first_text = "".join([c.choices[0].delta.content or "" async for c in first if c.choices])
    assert resumed_text == first_text == "slow and steady wins"
    # The 409 was not retried: the model saw the router call and one run, nothing for the queued request.
    assert len(compat.up.chat_requests) == 2
    queued = await compat.assert_outcome(queued_id, "queued", 409)
    assert queued["session_id"] == "s-busy"
    events = await compat.timeline(queued_id)
    assert events[-1]["detail"]["running_request_id"] == first_id
    await compat.assert_outcome(resumed_id, "resumed", 200)
    await compat.assert_outcome(first_id, "final_answer", 200)
    await client.close()


async def test_resume_of_an_unknown_request_is_not_found(compat):
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                             extra_headers={"X-BMO-Resume": "req_doesnotexist"})
    assert err.value.body["param"] == "X-BMO-Resume"
    await client.close()


async def test_client_disconnect_mid_stream_cancels_the_run(compat):
    compat.model.answer(reply("part one, part two", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        response, request_id = await open_stream_until(compat, http, b"part two")
        response.close()  # the client walks away mid-stream
    await compat.up.wait_disconnect(timeout=10)
    async with asyncio.timeout(10):
        while (await compat.row(request_id))["status"] != "finished":
            await asyncio.sleep(0.05)
    await compat.assert_outcome(request_id, "cancelled", 499, level="info")
    names = [e["event"] for e in await compat.timeline(request_id)]
    assert "client_disconnected" in names and "run_cancelled" in names


async def test_model_override_is_rejected_by_default(compat):
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}],
                                         extra_headers=session_headers("s-ovr"))
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=OTHER_MODEL, messages=[{"role": "user", "content": "b"}],
                                             extra_headers=session_headers("s-ovr"))
    assert err.value.body["param"] == "model" and err.value.body["code"] == "model_override_rejected"
    await compat.assert_outcome(err.value.request_id, "model_override_rejected", 400, level="info")
    await client.close()


async def test_model_override_allow_ephemeral_runs_on_the_other_model_once(start_compat):
    compat = await start_compat(model_override_policy="allow_ephemeral")
    client = compat.aclient()
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}],
                                         extra_headers=session_headers("s-eph"))
    raw = await client.chat.completions.with_raw_response.create(
        model=OTHER_MODEL, messages=[{"role": "user", "content": "b"}], extra_headers=session_headers("s-eph"))
    assert raw.parse().model == OTHER_MODEL
    assert compat.up.chat_requests[-1].body["model"] == "other-model"
    session = await coordinator_of(compat.host).get_session("s-eph")
    assert session.model == MODEL  # the session keeps its own model
    await compat.assert_outcome(raw.headers["x-request-id"], "model_override_applied", 200)
    await client.close()


async def test_client_giving_up_on_a_non_streamed_answer_cancels_the_run(compat):
    compat.model.answer(reply("never comes", stall=True))
    client = compat.aclient(timeout=1.0, max_retries=0)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "wait"}],
                                             extra_headers={"X-BMO-Session-Id": "s-gone"})
    await compat.up.wait_disconnect(timeout=10)
    rows, _ = await compat.ledger.list_runs(limit=1, session_id="s-gone")
    async with asyncio.timeout(10):
        while (row := await compat.row(rows[0]["request_id"]))["status"] != "finished":
            await asyncio.sleep(0.05)
    await compat.assert_outcome(row["request_id"], "cancelled", 499)
    assert coordinator_of(compat.host).active_run("s-gone") is None
    await client.close()
