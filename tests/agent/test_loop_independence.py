"""The loop, its model steps and its tool calls stand on the run's services alone: no import of the coordinator."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bmo.agent import run_outcomes
from bmo.agent.events import RunFinished, ToolFinished
from bmo.agent.loop import AgentLoop
from bmo.agent.messages import ChatMessage
from bmo.agent.run import Run, RunPolicy
from bmo.agent.services import RunServices
from bmo.agent.tools.base import ToolContext, ToolFailed
from bmo.agent.tools.spawn import SpawnAgent
from bmo.testing.fake_upstream import reply, tool_call

LOWER_MODULES = ("bmo.agent.loop", "bmo.agent.model_step", "bmo.agent.tool_calls")
COORDINATOR = "bmo.agent.coordinator"


def imported_modules(module: str) -> set[str]:
    """Every module a source file names in an import, wherever it stands (``if TYPE_CHECKING:`` included)."""
    path = Path(importlib.util.find_spec(module).origin)
    package = module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            # ``from bmo.agent import coordinator`` imports the module by its attribute name.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", LOWER_MODULES)
def test_the_source_names_no_coordinator_import_even_for_type_checking(module):
    offending = {n for n in imported_modules(module) if n == COORDINATOR or n.startswith(COORDINATOR + ".")}
    assert offending == set(), f"{module} imports {sorted(offending)}"


def test_the_import_check_sees_imports_under_type_checking(tmp_path, monkeypatch):
    # The check itself must be able to fail: a module hiding the import under TYPE_CHECKING is caught.
    (tmp_path / "sneaky_loop.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bmo.agent.coordinator import Coordinator\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert COORDINATOR in imported_modules("sneaky_loop")


def test_importing_the_loop_and_tool_calls_loads_no_coordinator():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in LOWER_MODULES)
            + f"print({COORDINATOR!r} in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False", result.stderr


async def test_spawn_agent_runs_through_the_context_spawn_callable(tmp_path):
    asked: list[str] = []

    async def spawn(task: str) -> str:
        asked.append(task)
        return "sub-agent answer"

    ctx = ToolContext(host=None, session_id="s", run_id="r", workspace=tmp_path, spawn=spawn)
    assert await SpawnAgent().run({"task": "  count the files  "}, ctx) == "sub-agent answer"
    assert asked == ["count the files"]


async def test_spawn_agent_outside_a_run_is_a_tool_failure_not_a_crash(tmp_path):
    ctx = ToolContext(host=None, session_id="s", run_id="r", workspace=tmp_path)
    with pytest.raises(ToolFailed, match="spawning needs a running agent loop"):
        await SpawnAgent().run({"task": "anything"}, ctx)


async def test_a_loop_on_hand_built_services_acts_and_reports_only_through_them(agent, workspace, fake_upstream):
    (workspace / "a.txt").write_text("A")
    bmo = await agent()
    co, host = bmo.co, bmo.server.host
    policy = RunPolicy()
    session = await co.create_session(model="fake/fake-model", ephemeral=True)
    run = Run("run_by_hand", session.id, session.model, policy=policy)
    await session.append([ChatMessage(role="user", content="read a.txt and ask a helper")], run.id)
    events, records, tasks = [], [], []

    async def spawn(task: str) -> str:
        tasks.append(task)
        return "the helper says 42"

    services = RunServices(
        resolve_model=co.resolve_model, store=co.store, permissions=co.permissions, tools=co.tools,
        offered=co.tools_for(policy), workspace=workspace, options=host.config.section("agent"),
        loop_detection=host.config.section("agent.loop_detection"),
        length_recovery=host.config.section("agent.length_recovery"), emit=events.append,
        record=lambda msg, level="info", **fields: records.append(msg), tracer=None, spawn=spawn,
        tool_host=None,  # nothing to read: the loop must not need a host (read_file falls back to its defaults)
    )
    fake_upstream.script(reply(tool_calls=[tool_call("read_file", {"path": "a.txt"}, id="c1"),
                                           tool_call("spawn_agent", {"task": "find the answer"}, id="c2")]),
                         reply("A and 42"))
    row = {"id": run.id, "session_id": session.id, "model": run.model, "origin": policy.origin, "requester": "",
           "permission_mode": policy.permission_mode, "started_at": run.started_at, "parent_run_id": None}
    result = await AgentLoop(services, run, session, client_tools=None, sampling=None, unwritten_run_row=row).drive()

    assert result.outcome == run_outcomes.FINAL_ANSWER and result.text == "A and 42"
    assert tasks == ["find the answer"]  # spawn_agent reached the services' spawn through ctx.spawn
    assert fake_upstream.chat_requests[1].messages[-2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "A"},
        {"role": "tool", "tool_call_id": "c2", "content": "the helper says 42"}]
    assert sorted(e.name for e in events if isinstance(e, ToolFinished)) == ["read_file", "spawn_agent"]  # run together
    assert events[-1] is result and isinstance(result, RunFinished)
    assert {"agent.tool.finished", "agent.run.finished"} <= set(records)
    assert co.get_run(run.id) is None  # the coordinator never heard of this run
    assert (await co.store.run_row(run.id))["outcome"] == run_outcomes.FINAL_ANSWER
