"""Files the request names, said to a small model: told "notes.txt is a file in the workspace", it reads it.

Measured on Qwen2.5-Coder-0.5B (docs/local-model.md): asked "What does notes.txt say?" with the
file reads offered, it invented the content every time; with one line saying the file exists and
``read_file`` reads it, it called ``read_file`` and answered from it. Only regular files inside the
workspace count (resolved, so a symlink out of it names nothing), and at most a few.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import msgspec

from bmo.agent.messages import ChatMessage, text_of

# A token shaped like a file name ("notes.txt") or a relative path ("src/app.py", "docs/README").
_NAMED = re.compile(r"(?<![\w/.-])(?:[\w-]+/)*[\w-]+(?:\.[\w-]+)+(?![\w/-])|(?<![\w/.-])(?:[\w.-]+/)+[\w.-]+")
MAX_CANDIDATES = 8  # stat calls per request, bounded
MAX_HINTS = 3


def _files_in(workspace: Path, names: list[str]) -> list[str]:
    """The ``names`` that are regular files inside ``workspace``. Blocking: run in a thread."""
    root = workspace.resolve()
    found = []
    for name in names:
        try:
            path = (root / name).resolve()
        except (OSError, RuntimeError):
            continue
        if path != root and path.is_relative_to(root) and path.is_file():
            found.append(name)
            if len(found) == MAX_HINTS:
                break
    return found


def _hint(names: list[str]) -> str:
    return "\n".join(f"({name} is a file in the workspace: read_file reads it.)" for name in names)


async def with_file_hints(messages: list[ChatMessage], workspace: Path | None) -> list[ChatMessage]:
    """``messages`` with a hint after the last user message for each workspace file it names."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if workspace is None or last is None or not isinstance(messages[last].content, str):
        return messages
    text = text_of(messages[last].content)
    names = list(dict.fromkeys(m.group(0).rstrip(".") for m in _NAMED.finditer(text)))[:MAX_CANDIDATES]
    names = [n for n in names if not n.startswith("/") and ".." not in n.split("/")]
    if not names:
        return messages
    files = await asyncio.to_thread(_files_in, workspace, names)
    if not files:
        return messages
    hinted = msgspec.structs.replace(messages[last], content=f"{text}\n\n{_hint(files)}")
    return [*messages[:last], hinted, *messages[last + 1:]]
