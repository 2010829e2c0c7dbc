"""What one run may use, built by the coordinator and handed to the run's loop.

The loop and its tool calls reach models, the store, permissions, tools, config, records,
spans and sub-runs only through a :class:`RunServices`: they never see the coordinator, and
they read nothing from the host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmo.agent.events import AnyEvent, PermissionDecided, PermissionRequested, ReasoningDelta

if TYPE_CHECKING:
    from bmo.agent.config import AgentOptions, LengthRecoveryOptions, LoopDetectionOptions
    from bmo.agent.context import ContextOptions
    from bmo.agent.permissions import PermissionBroker
    from bmo.agent.run import Run
    from bmo.agent.store import AgentStore
    from bmo.agent.tools.base import Tool


@dataclass(frozen=True, slots=True, kw_only=True)
class RunServices:
    """Everything one run's loop reaches, bound to that run (its events, its sub-runs)."""

    resolve_model: Callable[[str], tuple[Any, str]]  # "NAME/model" -> (provider, upstream model name)
    store: AgentStore
    permissions: PermissionBroker
    tools: Mapping[str, Tool]  # every BMO tool, so a call to one the policy does not offer is explained
    offered: Mapping[str, Tool]  # the BMO tools the run's policy offers to the model
    workspace: Path
    options: AgentOptions  # [agent]
    loop_detection: LoopDetectionOptions  # [agent.loop_detection]
    length_recovery: LengthRecoveryOptions  # [agent.length_recovery]
    emit: Callable[[AnyEvent], None]  # the run's event stream (and its parent's, for a sub-run)
    record: Callable[..., Any]  # a trace record: record(msg, level, **fields)
    tracer: Any  # the OpenTelemetry tracer of model and tool spans; None: no spans
    spawn: Callable[[str], Awaitable[str]]  # a sub-run of this run on a task; its final answer
    tool_host: Any  # what tools get as ``ctx.host``; the loop itself reads nothing from it
    context: ContextOptions | None = None  # [agent.context]: each model call's budget; None: no limit
    # On a shared store: the writer job that frees the session's lease, run in the write of the run's end row,
    # so the lease is gone before the client can read the answer and send its next turn. None otherwise.
    end_lease: Callable[[], Callable[[Any], None]] | None = None


def run_events(run: Run, parent: Run | None = None) -> Callable[[AnyEvent], None]:
    """The emit of ``run``: a sub-run's challenges and progress also reach whoever watches ``parent``."""
    if parent is None:
        return run.emit

    def emit(event: AnyEvent) -> None:
        run.emit(event)
        if parent.done:
            return
        if isinstance(event, (PermissionRequested, PermissionDecided)):
            parent.emit(event)
        elif isinstance(event, ReasoningDelta) and event.text.startswith("running "):
            parent.emit(ReasoningDelta(text="sub-agent " + event.text))

    return emit
