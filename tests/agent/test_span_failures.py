"""Failed model and tool calls end their spans as ERROR with an ``error.type``; model spans name the answering model."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bmo.agent.coordinator import RunPolicy
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import error, reply, tool_call


async def _spans(bmo):
    exporter = InMemorySpanExporter()
    bmo.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def _run(bmo, policy: RunPolicy, text: str = "go"):
    session = await bmo.co.create_session(model="fake/fake-model")
    run = await bmo.co.start_run(session, [ChatMessage(role="user", content=text)], policy=policy)
    await asyncio.wait_for(run.wait(), 60)
    return session, run


def _tool_spans(exporter) -> dict:
    return {s.attributes["gen_ai.tool.call.id"]: s for s in exporter.get_finished_spans()
            if s.name.startswith("execute_tool ")}


async def test_failed_tool_calls_end_as_error_with_an_error_type(agent, workspace, fake_upstream):
    (workspace / "f.txt").write_text("f")
    bmo = await agent()
    exporter = await _spans(bmo)
    fake_upstream.script(reply(tool_calls=[
        tool_call("read_file", {"path": "f.txt"}, id="ok"),
        tool_call("read_file", {"path": "missing.txt"}, id="failed"),
        tool_call("no_such_tool", {}, id="unknown"),
        tool_call("read_file", "not json", id="badargs"),
        tool_call("run_shell", {"command": "sleep 30", "timeout_s": 1}, id="slow"),
    ]), reply("done"))
    await _run(bmo, RunPolicy(permission_mode="auto_approve"))
    spans = _tool_spans(exporter)
    assert spans["ok"].status.status_code == StatusCode.UNSET and "error.type" not in spans["ok"].attributes
    expected = {"failed": "tool_error", "unknown": "tool_not_found", "badargs": "invalid_arguments", "slow": "timeout"}
    for call_id, kind in expected.items():
        span = spans[call_id]
        assert span.status.status_code == StatusCode.ERROR, call_id
        assert span.attributes["error.type"] == kind, call_id
        assert span.status.description


async def test_a_tool_the_policy_refuses_ends_as_error_refused(agent, workspace, fake_upstream):
    bmo = await agent()
    exporter = await _spans(bmo)
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "x.txt", "content": "x"}, id="w")]),
                         reply("done"))
    await _run(bmo, RunPolicy(allowed_classes=frozenset({"read"})))
    span = _tool_spans(exporter)["w"]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "refused"


async def test_a_denied_permission_ends_as_error_permission_timeout(agent, workspace, fake_upstream):
    bmo = await agent()
    exporter = await _spans(bmo)
    fake_upstream.script(reply(tool_calls=[tool_call("write_file", {"path": "x.txt", "content": "x"}, id="w")]),
                         reply("done"))
    await _run(bmo, RunPolicy(permission_timeout_s=0.2))
    span = _tool_spans(exporter)["w"]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["error.type"] == "permission_timeout"


async def test_model_spans_carry_the_model_the_upstream_answered_with(agent, workspace, fake_upstream):
    bmo = await agent()
    exporter = await _spans(bmo)
    fake_upstream.script(reply("hi"))
    session, run = await _run(bmo, RunPolicy())
    chat = [s for s in exporter.get_finished_spans() if s.name == "chat fake-model"]
    assert len(chat) == 1
    assert chat[0].attributes["gen_ai.response.model"] == "fake-model"
    assert chat[0].attributes["gen_ai.conversation.id"] == session.id
    assert chat[0].attributes["bmo.run_id"] == run.id


@pytest.mark.parametrize("status,kind", [(400, "400")])
async def test_a_failed_model_call_ends_as_error_with_the_upstream_status(agent, workspace, fake_upstream, status, kind):
    bmo = await agent(agent_toml="", toml="")
    exporter = await _spans(bmo)
    fake_upstream.script(*[error(status, "nope")] * 6)
    await _run(bmo, RunPolicy())
    chat = [s for s in exporter.get_finished_spans() if s.name == "chat fake-model"]
    assert chat and all(s.status.status_code == StatusCode.ERROR for s in chat)
    assert chat[-1].attributes["error.type"] == kind
