"""The Responses API through the official openai SDK: string and item input, continuation, store, tools."""

from __future__ import annotations

import json

import openai
import pytest
from compat_support import MODEL

from bmo.agent import coordinator_of
from bmo.testing.fake_upstream import reply, tool_call

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def agent_calls(compat):
    return [r for r in compat.up.chat_requests
            if "bmo_route" not in {(t.get("function") or {}).get("name") for t in r.body.get("tools") or []}]


async def test_string_input_answers_as_a_response_that_lands_in_the_ledger(compat):
    client = compat.aclient()
    raw = await client.responses.with_raw_response.create(model=MODEL, input="hello there")
    response = raw.parse()
    assert response.output_text == "echo: hello there"
    assert response.status == "completed" and response.object == "response"
    request_id = raw.headers["x-request-id"]
    assert response.id == "resp_" + request_id.removeprefix("req_")
    assert response.usage.total_tokens > 0
    action = await compat.assert_outcome(request_id, "final_answer", 200)
    assert action["route"] == "responses_create" and action["model"] == MODEL
    stored = await client.responses.retrieve(response.id)
    assert stored.output_text == "echo: hello there" and stored.status == "completed"
    await client.close()


async def test_items_and_instructions_become_the_sessions_messages(compat):
    client = compat.aclient()
    response = await client.responses.create(model=MODEL, instructions="Answer briefly.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": "second"},
    ])
    assert response.output_text == "echo: second"
    sent = [(m["role"], m.get("content")) for m in agent_calls(compat)[0].body["messages"]]
    assert ("system", "Answer briefly.") in sent
    assert [m for m in sent if m[0] != "system"] == [("user", "first"), ("assistant", "ok"), ("user", "second")]
    items = await client.responses.input_items.list(response.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert items.data[0].content[0].text == "first"
    await client.close()


async def test_previous_response_id_continues_the_same_session(compat):
    client = compat.aclient()
    first = await client.responses.with_raw_response.create(model=MODEL, input="one")
    second = await client.responses.with_raw_response.create(input="two", previous_response_id=first.parse().id)
    assert second.parse().output_text == "echo: two"
    rows = [await compat.row(r.headers["x-request-id"]) for r in (first, second)]
    assert rows[0]["session_id"] and rows[0]["session_id"] == rows[1]["session_id"]
    assert first.headers["x-bmo-session-id"] == second.headers["x-bmo-session-id"] == rows[0]["session_id"]
    assert rows[1]["is_session_reuse"]
    users = [m["content"] for m in agent_calls(compat)[-1].body["messages"] if m["role"] == "user"]
    assert users == ["one", "two"]  # BMO's copy of the session supplied the first turn


async def test_continuing_an_older_response_forks_instead_of_appending(compat):
    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="root")
    await client.responses.create(input="branch a", previous_response_id=first.id)
    await client.responses.create(input="branch b", previous_response_id=first.id)
    users = [m["content"] for m in agent_calls(compat)[-1].body["messages"] if m["role"] == "user"]
    assert users == ["root", "branch b"]
    await client.close()


async def test_store_false_keeps_no_session_and_no_stored_response(compat):
    client = compat.aclient()
    raw = await client.responses.with_raw_response.create(model=MODEL, input="forget me", store=False)
    response = raw.parse()
    assert response.output_text == "echo: forget me" and response.store is False
    assert "x-bmo-session-id" not in raw.headers
    assert await coordinator_of(compat.host).list_sessions(include_ephemeral=True) == []
    with pytest.raises(openai.NotFoundError) as err:
        await client.responses.retrieve(response.id)
    assert err.value.body["code"] == "response_not_found"
    await compat.assert_outcome(raw.headers["x-request-id"], "final_answer", 200)
    await client.close()


async def test_function_tool_round_trips_as_function_call_items(start_compat):
    compat = await start_compat(tool_policy="auto_approve")
    compat.model.answer(reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"}, id="call_w1")]),
                        reply("It is sunny in Oslo."))
    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="weather in Oslo?", tools=[WEATHER])
    calls = [i for i in first.output if i.type == "function_call"]
    assert [(c.name, json.loads(c.arguments), c.call_id) for c in calls] == [("get_weather", {"city": "Oslo"},
                                                                              "call_w1")]
    offered = {t["function"]["name"] for t in agent_calls(compat)[0].body["tools"]}
    assert "get_weather" in offered
    second = await client.responses.create(
        model=MODEL, previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny, 21C"}])
    assert second.output_text == "It is sunny in Oslo."
    tool_messages = [m for m in agent_calls(compat)[-1].body["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [("call_w1", "sunny, 21C")]
    await client.close()


async def test_client_tools_are_not_offered_under_chat_only(compat):
    client = compat.aclient()
    response = await client.responses.create(model=MODEL, input="weather?", tools=[WEATHER])
    assert [i.type for i in response.output] == ["message"]
    offered = {t["function"]["name"] for t in agent_calls(compat)[0].body.get("tools") or []}
    assert "get_weather" not in offered
    await client.close()


async def test_bmo_tool_progress_is_a_reasoning_item_never_a_function_call(compat):
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), reply("It says 42."))
    client = compat.aclient()
    response = await client.responses.create(model=MODEL, input="what do the notes say?")
    assert [i.type for i in response.output] == ["reasoning", "message"]
    assert "read_file" in response.output[0].summary[0].text
    assert response.output_text == "It says 42."
    await client.close()


async def test_unknown_previous_response_id_is_a_404_naming_the_field(compat):
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError) as err:
        await client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")
    assert err.value.body["param"] == "previous_response_id"
    await client.close()


async def test_delete_forgets_the_response_but_keeps_the_session(compat):
    client = compat.aclient()
    response = await client.responses.create(model=MODEL, input="keep the session")
    await client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    assert len(await coordinator_of(compat.host).list_sessions()) == 1
    rows, _ = await compat.ledger.list_runs(limit=10, route="responses_delete")
    assert [r["outcome"] for r in rows] == ["final_answer"]
    await client.close()


async def test_ambiguous_first_input_with_ask_answers_with_the_routers_question(compat):
    from compat_support import route_reply

    compat.model.route(route_reply("ambiguous", "Which file?"))
    client = compat.aclient()
    raw = await client.responses.with_raw_response.create(model=MODEL, input="fix it")
    response = raw.parse()
    assert response.output_text == "Which file?"
    assert agent_calls(compat) == []
    await compat.assert_outcome(raw.headers["x-request-id"], "clarification", 200)
    follow = await client.responses.create(input="notes.txt", previous_response_id=response.id)
    assert follow.output_text == "echo: notes.txt" and compat.model.router_calls == 1
    await client.close()


async def test_continuing_on_another_model_is_rejected_by_default(compat):
    from compat_support import OTHER_MODEL

    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="one")
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=OTHER_MODEL, input="two", previous_response_id=first.id)
    assert err.value.body["code"] == "model_override_rejected" and err.value.body["param"] == "model"
    await client.close()


async def test_store_false_continuation_stores_nothing_new(compat):
    client = compat.aclient()
    first = await client.responses.create(model=MODEL, input="kept")
    second = await client.responses.create(input="not kept", previous_response_id=first.id, store=False)
    assert second.output_text == "echo: not kept"
    users = [m["content"] for m in agent_calls(compat)[-1].body["messages"] if m["role"] == "user"]
    assert users == ["kept", "not kept"]
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)
    sessions = await coordinator_of(compat.host).list_sessions(include_ephemeral=True)
    assert len(sessions) == 1 and len(await sessions[0].messages()) == 2  # the stored session is untouched
    await client.close()


async def test_input_items_page_with_limit_and_after(compat):
    client = compat.aclient()
    response = await client.responses.create(model=MODEL, input=[
        {"role": "user", "content": f"m{i}"} for i in range(5)])
    page = await client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["m0", "m1"] and page.has_more
    rest = await client.responses.input_items.list(response.id, limit=10, order="asc", after=page.last_id)
    assert [i.content[0].text for i in rest.data] == ["m2", "m3", "m4"] and not rest.has_more
    newest = await client.responses.input_items.list(response.id, limit=1)
    assert newest.data[0].content[0].text == "m4"  # desc is the default order, as in OpenAI's API
    await client.close()


async def test_an_upstream_failure_before_any_output_is_a_plain_error(compat):
    from bmo.testing.fake_upstream import error

    compat.model.answer(error(500, "upstream down"))
    client = compat.aclient(max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        await client.responses.create(model=MODEL, input="x", stream=True)
    assert err.value.status_code == 502
    await client.close()


async def test_a_bad_input_item_is_a_400_naming_it(compat):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=MODEL, input=[{"type": "function_call_output", "output": "x"}])
    assert err.value.body["param"] == "input[0].call_id"
    await client.close()


async def test_a_wrongly_typed_field_is_a_400_naming_it(compat):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=MODEL, input=[{"role": "user", "content": 5}])
    assert err.value.body["param"] == "input[0].content"
    await client.close()


async def test_input_ending_with_an_assistant_message_has_nothing_to_answer(compat):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model=MODEL, input=[{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": "hello"}])
    assert err.value.body["param"] == "input"
    await client.close()
