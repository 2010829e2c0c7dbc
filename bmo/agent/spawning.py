"""Sub-agents: a run's ``spawn_agent`` task as a sub-run in memory, under [agent.spawning] limits."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from bmo.agent import run_outcomes
from bmo.agent.messages import ChatMessage
from bmo.agent.tools.base import ToolFailed

if TYPE_CHECKING:
    from bmo.agent.coordinator import Coordinator
    from bmo.agent.run import Run


async def spawn_sub_run(coordinator: Coordinator, parent: Run, depth: int, task: str) -> str:
    """Run ``task`` as a sub-run of ``parent`` (at ``depth``); its final text, or ToolFailed."""
    opts = coordinator.host.config.section("agent.spawning")
    if not opts.enabled:
        raise ToolFailed("spawning is disabled ([agent.spawning] enabled = false); do the task yourself")
    if depth + 1 > opts.max_depth:
        raise ToolFailed(f"sub-agents may nest only {opts.max_depth} deep ([agent.spawning] max_depth); do the task yourself")
    if parent.spawned >= opts.max_per_run:
        raise ToolFailed(f"this run already spawned {parent.spawned} sub-agents, the limit "
                         f"([agent.spawning] max_per_run); do the rest yourself")
    parent.spawned += 1
    session = await coordinator.create_session(model=parent.model, requester=parent.requester, ephemeral=True,
                                        origin="spawn", parent_run_id=parent.id)
    policy = msgspec.structs.replace(parent.policy, max_steps=opts.max_steps, origin="spawn")
    child = await coordinator.start_run(session, [ChatMessage(role="user", content=task)], policy=policy,
                                 requester=parent.requester, depth=depth + 1, forward_to=parent)
    # The sub-agent's conversation lives in memory only, until its run ends; its run row names the parent run.
    child.on_finish(lambda _: coordinator._ephemeral.pop(session.id, None))
    try:
        result = await child.wait()
    except asyncio.CancelledError:
        child.cancel("parent run cancelled")
        raise
    if result.outcome != run_outcomes.FINAL_ANSWER:
        raise ToolFailed(f"the sub-agent ended with outcome {result.outcome}: {result.error or result.text or 'no answer'}")
    return result.text or "(the sub-agent gave an empty answer)"
