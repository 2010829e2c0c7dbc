"""Which of the tools a client sends reach the model: ``[options.openai_compat] client_tools``.

Open WebUI sends dozens of its own tools on every turn; an operator keeps the ones worth
offering with ``client_tools = ["search_*", "get_weather"]`` (names or globs), or ``"none"``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase


def select_client_tools(tools: list[dict], setting: str | list[str]) -> tuple[list[dict], list[str]]:
    """(the tools offered, the names withheld) under ``setting``."""
    if setting == "all":
        return tools, []
    globs = [] if setting == "none" else list(setting)
    kept, withheld = [], []
    for tool in tools:
        name = str((tool.get("function") or {}).get("name", ""))
        (kept if any(fnmatchcase(name, g) for g in globs) else withheld).append(tool)
    return kept, [str((t.get("function") or {}).get("name", "")) for t in withheld]
