"""Spans for model and tool calls (children of the caller's span), trace records, and config show commands."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bmo.agent.coordinator import RunPolicy
from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import reply, tool_call


async def test_model_and_tool_spans_are_children_of_the_callers_span(agent, workspace, fake_upstream):
    (workspace / "f.txt").write_text("f")
    bmo = await agent()
    exporter = InMemorySpanExporter()
    bmo.host.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "f.txt"}, id="t1")],
                               usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
                         reply("done", usage={"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}))
    session = await bmo.co.create_session(model="fake/fake-model")
    with bmo.host.tracer.start_as_current_span("POST /v1/chat/completions") as request_span:
        run = await bmo.co.start_run(session, [ChatMessage(role="user", content="go")], policy=RunPolicy())
    await asyncio.wait_for(run.wait(), 15)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    parent = request_span.get_span_context().span_id
    chat = [s for s in exporter.get_finished_spans() if s.name == "chat fake-model"]
    tool = spans["execute_tool read_file"]
    assert len(chat) == 2 and all(s.parent.span_id == parent for s in chat + [tool])
    assert chat[0].attributes["gen_ai.operation.name"] == "chat"
    assert chat[0].attributes["gen_ai.request.model"] == "fake-model"
    assert (chat[0].attributes["gen_ai.usage.input_tokens"], chat[0].attributes["gen_ai.usage.output_tokens"]) == (7, 3)
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert (tool.attributes["gen_ai.tool.name"], tool.attributes["gen_ai.tool.call.id"]) == ("read_file", "t1")


async def test_runs_and_tools_write_trace_records(agent, workspace, fake_upstream):
    (workspace / "f.txt").write_text("f")
    bmo = await agent()
    session = await bmo.create_session()
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "f.txt"})]), reply("ok"))
    await bmo.run(session["id"], "go")
    await asyncio.to_thread(bmo.host.records.flush)
    lines = [json.loads(line) for line in bmo.host.records.path.read_text().splitlines()]
    finished = [r for r in lines if r["msg"] == "agent.run.finished"]
    assert len(finished) == 1
    assert finished[0]["outcome"] == "final_answer" and finished[0]["session_id"] == session["id"] and finished[0]["steps"] == 2
    tools = [r for r in lines if r["msg"] == "agent.tool.finished"]
    assert tools[0]["tool"] == "read_file" and tools[0]["ok"] is True
    assert any(r["msg"] == "agent.run.started" for r in lines)


def test_config_show_subcommands_print_each_section(tmp_path, monkeypatch):
    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text("[agent.loop_detection]\nmax_identical_calls = 5\n")
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "show-loop-detection"])
    assert shown.exit_code == 0, shown.output
    assert "[agent.loop_detection]" in shown.output and "max_identical_calls = 5" in shown.output
    for name, key in [("show-file-tools", "max_read_bytes"), ("show-length-recovery", "max_continuations"),
                      ("show-spawning", "max_depth")]:
        out = runner.invoke(cli, ["config", name, "--json"])
        assert out.exit_code == 0, out.output
        assert key in json.loads(out.output)[next(iter(json.loads(out.output)))]
    helped = runner.invoke(cli, ["config", "show-spawning", "--help"])
    assert "Example output" in helped.output and "max_per_run" in helped.output


def test_a_wrong_provider_key_is_a_config_error_naming_it(tmp_path, monkeypatch):
    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text('[providers.local]\nkind = "openai"\nbase_url = "http://x/v1"\nmodel = ["m"]\n')
    out = CliRunner().invoke(cli, ["config", "show"])
    assert out.exit_code == 2 and "providers.local.model" in out.output


def test_provider_headers_are_redacted_in_config_show(tmp_path, monkeypatch):
    from bmo.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "bmo.toml").write_text(
        '[providers.local]\nbase_url = "http://x/v1"\napi_key_env = "LOCAL_KEY"\nheaders = {"X-Key" = "s3cret"}\n')
    out = CliRunner().invoke(cli, ["config", "show"])
    assert out.exit_code == 0, out.output
    assert "s3cret" not in out.output and "LOCAL_KEY" in out.output
