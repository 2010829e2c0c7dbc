"""Stored responses belong to their session's requester behind a trusted proxy: another's is a 404, as a missing one."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN

from bmo.agent import coordinator_of

PROXY = {"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"}


def as_user(user: str | None) -> dict[str, str]:
    return {"X-Auth-Request-User": user} if user else {}


@pytest.fixture
async def owned(start_compat):
    compat = await start_compat(env=PROXY)
    client = compat.aclient(max_retries=0)
    response = await client.responses.create(model=MODEL, input="mine", extra_headers=as_user("alice"))
    yield compat, client, response.id
    await client.close()


async def call(compat, method: str, path: str, user: str | None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, compat.api + path,
                                headers={"Authorization": f"Bearer {TOKEN}", **as_user(user)}) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize(("method", "suffix"), [
    ("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel")])
async def test_another_requester_reaches_no_stored_response_route(owned, method, suffix):
    compat, _, response_id = owned
    status, body = await call(compat, method, f"/responses/{response_id}{suffix}", "bob")
    missing_status, missing = await call(compat, method, f"/responses/resp_nope{suffix}", "bob")
    assert (status, body["error"]["code"]) == (missing_status, missing["error"]["code"]) == (404, "response_not_found")
    assert "alice" not in body["error"]["message"]
    status, _ = await call(compat, "GET", f"/responses/{response_id}", "alice")
    assert status == 200  # bob's DELETE removed nothing


async def test_another_requester_cannot_continue_a_response(owned):
    compat, client, response_id = owned
    calls = len(compat.up.chat_requests)
    with pytest.raises(openai.NotFoundError) as err:
        await client.responses.create(model=MODEL, input="let me in", previous_response_id=response_id,
                                      extra_headers=as_user("bob"))
    assert err.value.body["code"] == "response_not_found" and err.value.body["param"] == "previous_response_id"
    assert len(compat.up.chat_requests) == calls  # refused before any model call
    row = await compat.row(err.value.request_id)
    assert (row["requester"], row["http_status"]) == ("bob", 404)


async def test_the_owner_and_the_operator_reach_and_continue_it(owned):
    compat, client, response_id = owned
    assert (await call(compat, "GET", f"/responses/{response_id}/input_items", "alice"))[0] == 200
    assert (await call(compat, "GET", f"/responses/{response_id}", None))[0] == 200
    again = await client.responses.create(input="more", previous_response_id=response_id,
                                          extra_headers=as_user("alice"))
    assert again.output_text == "echo: more"
    operator = await client.responses.create(input="ops", previous_response_id=again.id)
    assert operator.output_text == "echo: ops"


async def test_a_response_whose_session_is_gone_stays_its_requesters(owned):
    compat, client, response_id = owned
    stored = await client.responses.retrieve(response_id, extra_headers=as_user("alice"))
    session_id = (await compat.row("req_" + stored.id.removeprefix("resp_")))["session_id"]
    coordinator = coordinator_of(compat.host)
    await coordinator.delete_session(session_id)
    assert await coordinator.get_session(session_id) is None  # the owner now comes from the ledger row
    await compat.ledger.drain()
    assert (await call(compat, "GET", f"/responses/{response_id}", "bob"))[0] == 404
    assert (await call(compat, "GET", f"/responses/{response_id}", "alice"))[0] == 200
