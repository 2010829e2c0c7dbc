"""The loop and its tool calls stand on the run's services alone: no import of the coordinator, at any time."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bmo.agent.tools.base import ToolContext, ToolFailed
from bmo.agent.tools.spawn import SpawnAgent

LOWER_MODULES = ("bmo.agent.loop", "bmo.agent.tool_calls")
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
