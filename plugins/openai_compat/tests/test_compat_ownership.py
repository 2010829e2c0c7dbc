"""Compat sessions, resumes and ledger rows belong to their requester behind a trusted proxy (issue 11, point 2)."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply

PROXY = {"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"}


def as_user(user: str | None, **extra: str) -> dict[str, str]:
    return {**({"X-Auth-Request-User": user} if user else {}), **extra}


async def chat(compat, user: str | None, text: str, **headers: str):
    client = compat.aclient(max_retries=0)
    try:
        return await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": text}], extra_headers=as_user(user, **headers))
    finally:
        await client.close()


async def get(compat, path: str, user: str | None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(compat.api + path, headers={"Authorization": f"Bearer {TOKEN}", **as_user(user)}) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def owned(start_compat):
    compat = await start_compat(env=PROXY)
    first = await chat(compat, "alice", "mine", **{"X-BMO-Session-Id": "s-1"})
    return compat, first.headers["x-request-id"]


async def test_another_requester_cannot_continue_a_session_and_learns_nothing(owned):
    compat, _ = owned
    calls = len(compat.up.chat_requests)
    with pytest.raises(openai.NotFoundError) as err:
        await chat(compat, "bob", "let me in", **{"X-BMO-Session-Id": "s-1"})
    assert err.value.body["code"] == "session_not_found" and "alice" not in err.value.body["message"]
    assert err.value.response.headers["x-request-id"]
    assert len(compat.up.chat_requests) == calls
    session = await coordinator_of(compat.host).get_session("s-1")
    assert session.created_by == "alice" and [m.content for m in await session.messages()] == ["mine", "echo: mine"]
    row = await compat.row(err.value.request_id)
    assert (row["requester"], row["http_status"]) == ("bob", 404)


async def test_the_owner_and_the_operator_continue_it(owned):
    compat, _ = owned
    again = await chat(compat, "alice", "more", **{"X-BMO-Session-Id": "s-1"})
    assert again.parse().choices[0].message.content == "echo: more"
    operator = await chat(compat, None, "ops", **{"X-BMO-Session-Id": "s-1"})
    assert operator.parse().choices[0].message.content == "echo: ops"


async def test_another_requester_cannot_resume_a_run(owned):
    compat, alice_request = owned
    with pytest.raises(openai.NotFoundError) as err:
        await chat(compat, "bob", "peek", **{"X-BMO-Resume": alice_request})
    assert err.value.body["code"] == "run_not_found"
    resumed = await chat(compat, "alice", "mine", **{"X-BMO-Resume": alice_request})
    assert resumed.parse().choices[0].message.content == "echo: mine"


async def test_the_runs_list_shows_a_requester_only_their_own_rows(owned):
    compat, alice_request = owned
    bob_request = (await chat(compat, "bob", "bobs")).headers["x-request-id"]
    await compat.ledger.drain()
    status, bobs = await get(compat, "/openai-compat/runs?route=chat_completions", "bob")
    assert status == 200 and [r["request_id"] for r in bobs["data"]] == [bob_request]
    status, alices = await get(compat, "/openai-compat/runs?route=chat_completions", "alice")
    assert [r["request_id"] for r in alices["data"]] == [alice_request]
    status, everything = await get(compat, "/openai-compat/runs?route=chat_completions", None)
    assert [r["request_id"] for r in everything["data"]] == [bob_request, alice_request]
    status, cursor = await get(compat, f"/openai-compat/runs?after={alice_request}", "bob")
    assert status == 400 and cursor["error"]["param"] == "after"  # as unknown as a made-up id


async def test_another_requesters_run_events_are_404_and_the_owners_are_served(owned):
    compat, alice_request = owned
    await compat.ledger.drain()
    status, answer = await get(compat, f"/openai-compat/runs/{alice_request}/events", "bob")
    assert status == 404 and answer["error"]["code"] == "run_not_found"
    for user in ("alice", None):
        status, answer = await get(compat, f"/openai-compat/runs/{alice_request}/events", user)
        assert status == 200 and answer["data"][-1]["terminal"]


async def test_without_a_trusted_proxy_identity_headers_change_nothing(start_compat):
    compat = await start_compat()
    compat.model.answer(reply("one"), reply("two"))
    await chat(compat, "alice", "a", **{"X-BMO-Session-Id": "s-shared"})
    second = await chat(compat, "bob", "b", **{"X-BMO-Session-Id": "s-shared"})
    assert second.parse().choices[0].message.content == "two"
