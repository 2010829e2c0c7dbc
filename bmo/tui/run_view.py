"""How one run's events show in the chat, for a run the TUI started and for one another client started."""

from __future__ import annotations

from typing import Protocol

from bmo.tui.widgets import Message


def decider(decided_by: str) -> str:
    """``user:alice`` as is; ``user:`` (no name known) as ``user``."""
    return decided_by.rstrip(":") or "unknown"


class ChatSurface(Protocol):
    """What a run view needs of the app."""

    run_status: str

    def say(self, role: str, text: str) -> Message: ...
    def scroll_chat(self) -> None: ...
    def ask_permission(self, event: dict) -> None: ...
    def permission_decided(self, permission_id: str) -> None: ...


class RunView:
    """One run's entries in the chat: its answer streaming in, a line per tool, its permission dialogs."""

    def __init__(self, surface: ChatSurface):
        self.surface = surface
        self.answer: Message | None = None
        self.finished = False

    def show(self, event: dict) -> None:
        surface, kind = self.surface, event.get("type")
        if kind == "text.delta":
            if self.answer is None:
                self.answer = surface.say("assistant", "")
            self.answer.append(event["text"])
            surface.scroll_chat()
            return
        # Text after any other line starts a new entry, so the chat reads in the order things happened.
        if kind in ("tool.started", "tool.finished", "permission.requested", "permission.decided"):
            self.answer = None
        if kind == "tool.started":
            surface.say("tool", f"⚙ {event['name']}({event['arguments']})")
        elif kind == "tool.finished":
            mark = "✓" if event["ok"] else "✗"
            surface.say("tool", f"{mark} {event['name']}: {event['summary']}")
        elif kind == "permission.requested":
            surface.ask_permission(event)
        elif kind == "permission.decided":
            surface.permission_decided(event["permission_id"])
            surface.say("notice", f"{event['tool']}: {event['decision']} ({decider(event['decided_by'])})")
        elif kind == "run.finished":
            self.finished = True
            surface.run_status = event["outcome"]
            if event.get("error"):
                surface.say("error", event["error"])
            elif self.answer is None and event.get("text"):
                surface.say("assistant", event["text"])
