"""The sandbox every tool-started process runs in: bubblewrap namespaces, an allow-listed environment, limits.

``Sandbox.for_context(ctx).run(argv, ...)`` is the one way a tool starts a process.
"""

from __future__ import annotations

from bmo.agent.sandbox.config import SandboxOptions
from bmo.agent.sandbox.sandbox import CommandResult, Sandbox, SandboxUnavailable

__all__ = ["CommandResult", "Sandbox", "SandboxOptions", "SandboxUnavailable"]
