"""Recognise Open WebUI's background task requests (title, tags, follow-ups, queries, autocomplete).

Open WebUI builds them in ``routers/tasks.py`` from ``### Task:`` prompt templates that embed the
conversation in a ``<chat_history>`` block, sends them as one user message with ``stream: false``
and without tools, to the chat's own model, often while that chat's answer is still streaming.
"""

from __future__ import annotations

from typing import Any

TASK_MARKER = "### Task:"
HISTORY_MARKER = "<chat_history>"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def task_named_in_headers(headers, names: list[str]) -> str:
    """The task kind a ``{{TASK}}`` header template filled in (e.g. ``title_generation``), else ``""``.

    Open WebUI fills the template with an empty string for ordinary chat turns.
    """
    for name in names:
        value = (headers.get(name) or "").strip()
        if value:
            return value
    return ""


def is_background_task(body: Any) -> bool:
    """True for a task request: exactly one user message that starts with ``### Task:`` and holds a
    ``<chat_history>`` block, not streamed, no tools. System messages a model preset adds are allowed."""
    if not isinstance(body, dict) or body.get("stream") or body.get("tools"):
        return False
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    others = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
    if len(others) != 1 or not isinstance(others[0], dict) or others[0].get("role") != "user":
        return False
    text = _text(others[0].get("content")).lstrip()
    return text.startswith(TASK_MARKER) and HISTORY_MARKER in text
