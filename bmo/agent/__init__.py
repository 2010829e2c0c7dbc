"""The agent core: sessions, runs, the loop, providers, tools and permissions.

Other plugins reach the core through :func:`coordinator_of` (or :func:`maybe_coordinator`);
the agent plugin puts its coordinator in ``host.state`` at startup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bmo.agent.errors import AgentNotStarted

if TYPE_CHECKING:
    from bmo.agent.coordinator import Coordinator

__all__ = ["COORDINATOR_STATE_KEY", "AgentNotStarted", "coordinator_of", "maybe_coordinator"]

COORDINATOR_STATE_KEY = "bmo.agent"  # host.state key, named after the agent plugin


def maybe_coordinator(host: Any) -> Coordinator | None:
    """The host's agent coordinator, or None before the agent plugin started (or when its startup failed)."""
    return host.state.get(COORDINATOR_STATE_KEY)


def coordinator_of(host: Any) -> Coordinator:
    """The host's agent coordinator; raises :class:`AgentNotStarted` (status 503) when it is not running."""
    coordinator = host.state.get(COORDINATOR_STATE_KEY)
    if coordinator is None:
        raise AgentNotStarted()
    return coordinator
