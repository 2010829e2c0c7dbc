"""The hooks client plugins implement (session key, task classification, requester) and the request span."""

from __future__ import annotations

from compat_support import MODEL
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bmo.agent import coordinator_of
from bmo.hookspecs import hookimpl


class ClientPlugin:
    """A throwaway client plugin: sessions from a body field, tasks by prompt prefix, requester from a header."""

    @hookimpl
    def bmo_openai_compat_session_key(self, request, body):
        return (body.get("metadata") or {}).get("chat_id")

    @hookimpl
    def bmo_openai_compat_classify(self, request, body):
        last = body["messages"][-1].get("content") or ""
        return "task" if isinstance(last, str) and last.startswith("### Task:") else None

    @hookimpl
    def bmo_openai_compat_requester(self, request):
        return request.headers.get("X-Client-User")


def plugged(compat):
    pm = compat.host.pm
    pm.register(ClientPlugin(), name="test-client-plugin")
    return lambda: pm.unregister(name="test-client-plugin")


async def test_session_key_hook_gives_a_session_without_the_header(compat):
    unplug = plugged(compat)
    try:
        client = compat.aclient()
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], metadata={"chat_id": "chat-77"})
        assert raw.headers["x-bmo-session-id"] == "chat-77"
        assert await coordinator_of(compat.host).get_session("chat-77") is not None
        action = await compat.assert_outcome(raw.headers["x-request-id"], "final_answer", 200)
        assert action["session_id"] == "chat-77"
        await client.close()
    finally:
        unplug()


async def test_task_requests_make_one_direct_model_call_without_session_or_router(compat):
    unplug = plugged(compat)
    try:
        client = compat.aclient()
        headers = {"X-BMO-Session-Id": "s-task"}
        first = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "### Task: title this chat"}], extra_headers=headers,
            stream=True, stream_options={"include_usage": True})
        request_id = first.response.headers["x-request-id"]
        chunks = [c async for c in first]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: ### Task: title this chat"
        assert chunks[-1].usage is not None
        assert len(compat.up.chat_requests) == 1 and compat.model.router_calls == 0
        assert "tools" not in compat.up.chat_requests[0].body
        assert await coordinator_of(compat.host).get_session("s-task") is None  # no session touched
        action = await compat.assert_outcome(request_id, "final_answer", 200)
        fired = (await compat.records("openai_compat.fired", request_id=request_id))[0]
        assert action["kind"] == fired["kind"] == "task"
        assert (await compat.row(request_id))["kind"] == "task"
        await client.close()
    finally:
        unplug()


async def test_requester_hook_is_only_asked_for_trusted_peers(start_compat):
    untrusted = await start_compat()
    trusted = await start_compat(env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    for compat, expected in ((untrusted, ""), (trusted, "alice")):
        unplug = plugged(compat)
        try:
            client = compat.aclient()
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Client-User": "alice"})
            row = await compat.row(raw.headers["x-request-id"])
            assert row["requester"] == expected
            await client.close()
        finally:
            unplug()


async def test_one_span_per_request_continues_traceparent_and_parents_model_spans(compat):
    exporter = InMemorySpanExporter()
    compat.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client = compat.aclient()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "trace me"}],
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    request_id = raw.headers["x-request-id"]
    spans = exporter.get_finished_spans()
    mine = [s for s in spans if s.name == "openai_compat.chat_completions"]
    assert len(mine) == 1
    span = mine[0]
    assert format(span.context.trace_id, "032x") == trace_id
    attrs = dict(span.attributes)
    assert attrs["openai_compat.request_id"] == request_id
    assert attrs["openai_compat.outcome"] == "final_answer"
    assert attrs["openai_compat.route"] == "chat_completions" and attrs["openai_compat.model"] == MODEL
    assert attrs["http.response.status_code"] == 200
    by_id = {s.context.span_id: s for s in spans}

    def descends(s) -> bool:
        while s.parent is not None:
            if s.parent.span_id == span.context.span_id:
                return True
            s = by_id.get(s.parent.span_id)
            if s is None:
                return False
        return False

    model_spans = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(model_spans) == 2  # the router call and the agent's step
    assert all(descends(s) for s in model_spans)
    assert all(s.attributes.get("gen_ai.usage.input_tokens") is not None for s in model_spans)
    await client.close()


async def test_request_span_and_its_model_spans_reach_a_real_otlp_receiver(start_compat):
    import asyncio

    from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

    from bmo.testing.harness import free_port

    port = free_port()
    async with OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port)) as receiver:
        compat = await start_compat(extra_toml=f'[tracing]\notlp_endpoint = "http://127.0.0.1:{port}"\n')
        mine = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "openai_compat.chat_completions",
                                                          timeout=60))
        model = asyncio.ensure_future(receiver.await_trace(
            lambda s: s.name.startswith("chat ") and any(a.key == "gen_ai.usage.output_tokens" for a in s.attributes)
            and any(a.key == "bmo.run_id" for a in s.attributes), timeout=60))
        await asyncio.sleep(0)
        client = compat.aclient()
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "export me"}])
        await client.close()
        await compat.server.stop()  # flushes the batch exporter
        compat.server.stop = _noop
        mine, model = await asyncio.gather(mine, model)
    attrs = {a.key: a.value for a in mine.attributes}
    assert attrs["openai_compat.request_id"].string_value == raw.headers["x-request-id"]
    assert attrs["openai_compat.outcome"].string_value == "final_answer"
    assert model.trace_id == mine.trace_id and model.parent_span_id == mine.span_id


async def _noop() -> None:
    return None


async def test_the_request_span_ends_with_the_fields_of_the_action_record_even_those_learned_late(compat):
    exporter = InMemorySpanExporter()
    compat.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = compat.aclient()
    chat = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_headers={"X-BMO-Session-Id": "span-s1"})
    # The Responses route learns its session only after the fired record and the span's start.
    response = await client.responses.with_raw_response.create(model=MODEL, input="hello there")
    for raw, route in ((chat, "chat_completions"), (response, "responses_create")):
        request_id = raw.headers["x-request-id"]
        action = (await compat.records("openai_compat.action", request_id=request_id))[0]
        [span] = [s for s in exporter.get_finished_spans() if s.name == f"openai_compat.{route}"]
        attrs = dict(span.attributes)
        assert action["session_id"], route
        for key in ("request_id", "session_id", "route", "kind", "tool_policy", "ambiguity_action", "model",
                    "stream", "is_session_reuse", "client_ua", "outcome", "run_id"):
            assert attrs[f"openai_compat.{key}"] == action[key], (route, key)
        assert attrs["http.response.status_code"] == action["status"] == 200
    await client.close()
