"""Retention of stored responses ([store.retention.responses]) as the Responses API's clients see it."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest
from compat_support import MODEL, TOKEN

from bmo.store.retention import prune
from bmo.testing.fake_upstream import reply

OLD = time.time() - 31 * 86400  # past the 30 days stored responses are kept by default


async def _age(compat, response_id: str) -> None:
    await compat.host.db.write("UPDATE openai_compat_responses SET created_at = ? WHERE response_id = ?",
                               (OLD, response_id))


async def _prune(compat) -> dict:
    return await prune(compat.host.db, compat.host.config.section("store").retention)


async def test_a_pruned_response_is_the_same_404_for_previous_response_id_as_an_unknown_one(compat):
    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="one")
    second = await client.responses.create(input="two", previous_response_id=first.id)
    await _age(compat, first.id)
    deleted = await _prune(compat)
    assert deleted["responses"] == {"openai_compat_responses": 1}
    with pytest.raises(openai.NotFoundError) as pruned:
        await client.responses.create(model=MODEL, input="three", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.responses.create(model=MODEL, input="three", previous_response_id="resp_never")
    assert pruned.value.body["code"] == unknown.value.body["code"] == "response_not_found"
    assert pruned.value.body["param"] == unknown.value.body["param"] == "previous_response_id"
    assert pruned.value.body["message"].replace(first.id, "resp_never") == unknown.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    # The chain's newer response and its session stay: the conversation goes on from there.
    third = await client.responses.create(input="three", previous_response_id=second.id)
    assert third.output_text == "echo: three"
    await client.close()


async def test_a_response_whose_run_is_still_going_survives_a_prune(compat):
    compat.model.answer(reply("never ends", chunks=2, stall=True))
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        hanging = await http.post(compat.api + "/responses", headers=auth,
                                  json={"model": MODEL, "input": "hang", "stream": True})
        seen = b""
        async with asyncio.timeout(10):
            while b"response.output_text.delta" not in seen:
                seen += await hanging.content.readany()
        response_id = json.loads(seen.split(b"data: ", 1)[1].split(b"\n", 1)[0])["response"]["id"]
        await _age(compat, response_id)
        deleted = await _prune(compat)
        assert "responses" not in deleted
        cancel = await http.post(f"{compat.api}/responses/{response_id}/cancel", headers=auth)
        assert cancel.status == 200 and (await cancel.json())["status"] == "cancelled"
        await hanging.content.read()
    # Ended, and still old: the next pass lets it go.
    assert (await _prune(compat))["responses"] == {"openai_compat_responses": 1}
