"""spawn_agent: hand a sub-task to a sub-run with its own step budget."""

from __future__ import annotations

from bmo.agent.tools.base import READ, Tool, ToolContext, ToolFailed


class SpawnAgent(Tool):
    name = "spawn_agent"
    description = (
        "Delegate a self-contained sub-task to a sub-agent with the same tools; returns its final answer. "
        "Describe the task completely: the sub-agent does not see this conversation."
    )
    parameters = {
        "type": "object",
        "properties": {"task": {"type": "string", "description": "What the sub-agent should do and report back"}},
        "required": ["task"],
    }
    # Spawning does nothing by itself; the sub-run's own tools are permission-checked.
    tool_class = READ

    def permission_target(self, args: dict) -> str:
        return str(args.get("task", ""))[:200]

    async def run(self, args: dict, ctx: ToolContext) -> str:
        task = args.get("task")
        if not isinstance(task, str) or not task.strip():
            raise ToolFailed("task must be a non-empty description of the sub-task")
        return await ctx.spawn(task.strip())
