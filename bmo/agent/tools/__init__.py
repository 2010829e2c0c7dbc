"""Agent tools: the core set, and the base every plugin tool implements."""

from __future__ import annotations


def core_tools() -> list:
    """One instance of each built-in tool (names are part of the contract)."""
    from bmo.agent.tools.files import EditFile, ListDir, ReadFile, SearchFiles, WriteFile
    from bmo.agent.tools.shell import RunShell
    from bmo.agent.tools.spawn import SpawnAgent
    from bmo.agent.tools.web import WebFetch

    return [ReadFile(), ListDir(), SearchFiles(), WriteFile(), EditFile(), RunShell(), WebFetch(), SpawnAgent()]
