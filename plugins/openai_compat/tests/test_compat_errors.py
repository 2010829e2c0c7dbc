"""Refusals arrive as the SDK's own exception classes, with the field named and one terminal record."""

from __future__ import annotations

import openai
import pytest
from compat_support import MODEL


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     "messages[0].content[0].type"),
    ({"temperature": "hot"}, "temperature"),
    ({"modalities": ["text", "audio"]}, "modalities"),
])
async def test_unsupported_request_is_a_400_naming_the_field(compat, extra, param):
    client = compat.aclient()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(**body)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param
    assert param.split("[")[0].split(".")[0] in err.value.body["message"]
    await compat.assert_outcome(err.value.request_id, "error_500", 400, level="info")  # a client error (error_class client)
    assert compat.up.chat_requests == []  # nothing reached the model
    await client.close()


async def test_missing_messages_names_the_field(compat):
    client = compat.aclient()
    with pytest.raises(openai.BadRequestError) as err:
        await client.post("/chat/completions", body={"model": MODEL}, cast_to=object)
    assert err.value.body["param"] == "messages"
    await client.close()


async def test_malformed_json_is_a_400_envelope(compat):
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.post(compat.api + "/chat/completions", data=b"{nope",
                             headers={"Authorization": "Bearer test-token", "Content-Type": "application/json"}) as r:
            body = await r.json()
            assert r.status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
            assert "not valid JSON" in body["error"]["message"]
            await compat.assert_outcome(r.headers["X-Request-Id"], "error_500", 400, level="info")  # a client error (error_class client)


async def test_wrong_token_is_authentication_error_recorded_as_auth_failed(compat):
    client = compat.aclient(api_key="wrong")
    with pytest.raises(openai.AuthenticationError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    action = await compat.assert_outcome(err.value.request_id, "auth_failed", 401, level="info")
    assert action["route"] == "chat_completions"
    with pytest.raises(openai.AuthenticationError) as err:
        await client.models.list()
    await compat.assert_outcome(err.value.request_id, "auth_failed", 401)
    await client.close()


async def test_unknown_model_is_not_found(compat):
    client = compat.aclient()
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model="fake/nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    await compat.assert_outcome(err.value.request_id, "error_500", 404, level="info")  # a client error (error_class client)
    await client.close()


async def test_upstream_failure_before_first_byte_is_an_error_status_not_retried(compat):
    from bmo.testing.fake_upstream import error

    compat.model.answer(error(500, "upstream exploded"))
    client = compat.aclient()
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    assert err.value.status_code == 502
    assert err.value.response.headers["x-should-retry"] == "false"
    await compat.assert_outcome(err.value.request_id, "error_500", 502, level="warn")
    await client.close()


async def test_upstream_failure_mid_stream_arrives_as_an_error_event(compat):
    from bmo.testing.fake_upstream import drop_connection, reply, tool_call

    # The first step runs a BMO tool (the stream opens), then the next model call fails.
    compat.model.answer(reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})]), drop_connection())
    client = compat.aclient(max_retries=0)
    stream = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "read notes"}],
                                                  stream=True)
    request_id = stream.response.headers["x-request-id"]
    seen = []
    with pytest.raises(openai.APIError) as err:
        async for chunk in stream:
            seen.append(chunk)
    assert seen and seen[0].choices[0].delta.role == "assistant"
    assert err.value.message
    await compat.assert_outcome(request_id, "error_500", 502, level="warn")
    await client.close()


async def test_router_upstream_failure_is_an_error_status(compat):
    from bmo.testing.fake_upstream import error

    compat.model.route(error(500, "router model down"))
    client = compat.aclient()
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502 and "router" in err.value.message
    await compat.assert_outcome(err.value.request_id, "error_500", 502, level="warn")
    await client.close()


async def test_body_over_the_size_limit_is_413_and_recorded(start_compat):
    compat = await start_compat(env={"BMO_OPTIONS__HTTP_SERVER__MAX_BODY_BYTES": "2000"})
    client = compat.aclient()
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 5000}])
    assert err.value.status_code == 413 and err.value.body["code"] == "request_too_large"
    await compat.assert_outcome(err.value.request_id, "error_500", 413, level="info")  # a client error (error_class client)
    await client.close()


@pytest.mark.parametrize("headers, extra, param", [
    ({"X-BMO-Session-Id": "bad id with spaces"}, {}, "X-BMO-Session-Id"),
    ({}, {"stream_options": {"include_usage": True}}, "stream_options"),
    ({}, {"messages": [{"role": "tool", "content": "orphan"}]}, "messages[0].tool_call_id"),
    ({}, {"functions": [{"name": "f"}]}, "functions"),
    ({}, {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
])
async def test_more_refusals_name_their_field(compat, headers, extra, param):
    client = compat.aclient()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(**body, extra_headers=headers)
    assert err.value.body["param"] == param
    await client.close()


def test_user_agent_is_cut_at_64_bytes_without_splitting_a_character():
    from bmo_openai_compat.observe.compat_request import truncate_ua

    assert truncate_ua("a" * 100) == "a" * 64
    cut = truncate_ua("é" * 40)  # two bytes each
    assert cut == "é" * 32 and len(cut.encode()) == 64
    assert truncate_ua("x" + "é" * 40).encode().__len__() == 63


async def test_advertised_models_narrow_the_list_and_what_may_be_asked_for(start_compat):
    from compat_support import OTHER_MODEL

    compat = await start_compat(advertised_models=[OTHER_MODEL, "fake/not-served"])
    client = compat.aclient()
    models = await client.models.list()
    assert [m.id for m in models.data] == [OTHER_MODEL]
    assert models.data[0].owned_by == "fake" and models.data[0].object == "model"
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found" and OTHER_MODEL in err.value.message
    answer = await client.chat.completions.create(model=OTHER_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert answer.model == OTHER_MODEL
    await client.close()
