"""The tool interface: what a tool declares and what it receives when it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bmo.agent.tools.targets import Target

READ, WRITE, EXEC, NETWORK = "read", "write", "exec", "network"
# Reads of a cluster's API (the Kubernetes plugin): challenged like network unless a rule or policy grants it.
CLUSTER_READ = "cluster_read"
TOOL_CLASSES = (READ, WRITE, EXEC, NETWORK, CLUSTER_READ)


class ToolFailed(Exception):
    """A tool's own failure: its message goes back to the model, the run goes on."""


class ToolEndedRun(ToolFailed):
    """A failure the run cannot answer past: the loop ends the run with ``outcome`` and this message as its error."""

    def __init__(self, message: str, *, outcome: str):
        super().__init__(message)
        self.outcome = outcome


async def _no_spawn(task: str) -> str:
    raise ToolFailed("spawning needs a running agent loop; do the task yourself")


@dataclass
class ToolContext:
    """What a tool gets when it runs: the host, where and for whom it runs, and how to spawn a sub-run."""

    host: Any
    session_id: str
    run_id: str
    workspace: Path
    requester: str = ""
    depth: int = 0  # spawn_agent nesting level
    # ``await ctx.spawn(task)``: the final answer of a sub-run of this run on ``task`` (ToolFailed past the limits).
    spawn: Callable[[str], Awaitable[str]] = _no_spawn


class Tool:
    """Subclass and set the class attributes; ``run`` returns the text the model sees."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict]  # JSON schema of the arguments object
    tool_class: ClassVar[str] = READ

    async def run(self, args: dict, ctx: ToolContext) -> str:
        raise NotImplementedError

    def permission_target(self, args: dict) -> str:
        """What a path-glob policy rule matches against (a path for file tools)."""
        return str(args.get("path", ""))

    def permission_scope(self, args: dict, workspace: Path) -> Target:
        """What this call will really touch, as rules and "always" decisions match it.

        The default reads ``permission_target``: a command line for an exec tool, plain text otherwise.
        """
        target = self.permission_target(args)
        return Target.command(target) if self.tool_class == EXEC else Target.plain(target)

    def schema(self) -> dict:
        """The OpenAI ``tools`` entry for this tool."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}
