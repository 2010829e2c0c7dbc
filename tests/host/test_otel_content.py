"""Opt-in content on model and tool spans (bounded), and export failures counted in the posture."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

from bmo.agent import coordinator_of
from bmo.agent.coordinator import RunPolicy
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import FakeUpstream, reply, tool_call
from bmo.testing.harness import free_port, start_server
from bmo.tracing.content import TRUNCATED

CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages", "input.value", "output.value",
                "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
BIG = "x" * 5000


def _attrs(span) -> dict:
    return {kv.key: kv.value.string_value for kv in span.attributes if kv.value.HasField("string_value")}


async def _serve(tmp_path, up, *, tracing: str, env: dict | None = None):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "big.txt").write_text(BIG)
    toml = (f'[agent]\nworkspace = "{ws}"\ndefault_model = "fake/fake-model"\n\n'
            f'[providers.fake]\nkind = "openai"\nbase_url = "{up.url}/v1"\nmodels = ["fake-model"]\n\n'
            f'[tracing]\n{tracing}\n')
    return await start_server(tmp_path / "data", config_toml=toml, load_plugins="", env=env)


async def _one_run(srv) -> None:
    co = coordinator_of(srv.host)
    session = await co.create_session(model="fake/fake-model")
    run = await co.start_run(session, [ChatMessage(role="user", content="read big.txt please")], policy=RunPolicy())
    await asyncio.wait_for(run.wait(), 30)


async def _exported(tmp_path, tracing: str) -> tuple[dict, dict]:
    port = free_port()
    async with FakeUpstream() as up, \
            OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port)) as receiver:
        up.script(reply(tool_calls=[tool_call("read_file", {"path": "big.txt"}, id="r1")]), reply("it is all x"))
        srv = await _serve(tmp_path, up, tracing=f'otlp_endpoint = "http://127.0.0.1:{port}"\n{tracing}')
        model = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "chat fake-model" and _is_final(s),
                                                           timeout=60))
        tool = asyncio.ensure_future(receiver.await_trace(lambda s: s.name == "execute_tool read_file", timeout=60))
        await asyncio.sleep(0)
        try:
            await _one_run(srv)
        finally:
            await srv.stop()  # flushes the batch
        model, tool = await asyncio.gather(model, tool)
    return _attrs(model), _attrs(tool)


def _is_final(span) -> bool:
    """The second model call: the one whose input holds the tool result."""
    return any(kv.key == "gen_ai.response.finish_reasons" and "stop" in str(kv.value) for kv in span.attributes)


async def test_content_capture_on_puts_bounded_messages_and_tool_io_on_spans(tmp_path):
    model, tool = await _exported(tmp_path, "capture_content = true\ncapture_max_bytes = 1024")
    messages = model["gen_ai.input.messages"]
    assert len(messages.encode()) <= 1024 and messages.endswith(TRUNCATED)  # the tool result made it long
    assert "read big.txt please" in messages and "read big.txt please" in model["input.value"]
    assert json.loads(model["gen_ai.output.messages"])[0]["parts"][0] == {"type": "text", "content": "it is all x"}
    assert model["output.value"] == "it is all x"
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"path": "big.txt"}
    result = tool["gen_ai.tool.call.result"]
    assert result.startswith("x") and result.endswith(TRUNCATED) and len(result.encode()) <= 1024
    assert tool["input.value"] == tool["gen_ai.tool.call.arguments"] and tool["output.value"] == result


async def test_content_capture_off_by_default_leaves_no_content_on_spans(tmp_path):
    model, tool = await _exported(tmp_path, "")
    assert not CONTENT_KEYS & (model.keys() | tool.keys())
    assert model["gen_ai.response.model"] == "fake-model"


async def test_the_standard_variable_turns_content_capture_on(tmp_path):
    async with FakeUpstream() as up:
        up.script(reply("hello there"))
        srv = await _serve(tmp_path, up, tracing="", env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"})
        exporter = InMemorySpanExporter()
        srv.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        try:
            await _one_run(srv)
        finally:
            await srv.stop()
    chat = [s for s in exporter.get_finished_spans() if s.name == "chat fake-model"]
    assert chat[0].attributes["output.value"] == "hello there"


async def test_a_receiver_that_is_down_shows_dropped_spans_in_the_posture_and_serving_goes_on(tmp_path):
    closed = free_port()  # nothing listens here
    async with FakeUpstream() as up:
        srv = await _serve(tmp_path, up, tracing=f'otlp_endpoint = "http://127.0.0.1:{closed}"')
        try:
            async with aiohttp.ClientSession(headers=srv.headers()) as http:
                for _ in range(3):
                    async with http.get(srv.api + "/bmo/plugins") as resp:
                        assert resp.status == 200
                section: dict = {}
                for _ in range(120):  # the exporter retries for up to its timeout before it drops the batch
                    section = (await srv.host.posture())["tracing"]
                    if section["dropped_batches"]:
                        break
                    await asyncio.sleep(0.5)
                assert section["exporting"] is True and section["dropped_spans"] >= 1
                assert str(closed) in section["endpoint"] and section["last_failure_at"]
                async with http.get(srv.api + "/bmo/plugins") as resp:
                    assert resp.status == 200  # still serving
            await asyncio.to_thread(srv.host.records.flush)
            records = [json.loads(line) for line in srv.host.records.path.read_text().splitlines()]
            failed = [r for r in records if r["msg"] == "bmo.tracing.export_failed"]
            assert len(failed) == 1 and failed[0]["level"] == "warn" and failed[0]["dropped_spans"] >= 1
        finally:
            await srv.stop()
