"""The TUI's widgets: chat messages, the sidebar, and the permission challenge dialog."""

from __future__ import annotations

from rich.markdown import Markdown
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class Message(Static):
    """One entry of the conversation; ``role`` is a CSS class (user, assistant, tool, notice, error)."""

    def __init__(self, role: str, text: str = ""):
        super().__init__(markup=False, classes=role)
        self.role = role
        self.text = text
        self.update(self._renderable())

    def _renderable(self):
        # Answers are usually Markdown; everything else is shown verbatim.
        return Markdown(self.text) if self.role == "assistant" else self.text

    def append(self, more: str) -> None:
        self.text += more
        self.update(self._renderable())


class Sidebar(Vertical):
    """Session facts and the indicators plugins contribute (``label: value``)."""

    def compose(self) -> ComposeResult:
        yield Label("BMO", id="sidebar-title")
        yield Static("", id="session-info", markup=False)
        yield Static("", id="indicators", markup=False)

    def show_session(self, session_id: str, model: str, status: str) -> None:
        self.query_one("#session-info", Static).update(f"session: {session_id}\nmodel: {model}\nrun: {status}")

    def show_indicators(self, rows: list[dict]) -> None:
        text = "\n".join(f"{row['label']}: {row['value']}" for row in rows)
        self.query_one("#indicators", Static).update(text)


DECISION_BUTTONS = (("allow_once", "Allow once"), ("always", "Always"), ("deny", "Deny"))


class PermissionScreen(ModalScreen[str]):
    """Ask whether a tool may run; dismisses with allow_once, always or deny."""

    BINDINGS = [("escape", "dismiss('deny')", "Deny")]

    def __init__(self, event: dict):
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        with Vertical(id="permission-dialog"):
            yield Label(f"Allow {self.event['tool']} ({self.event['tool_class']})?", id="permission-title")
            yield Static(self.event.get("arguments", ""), id="permission-args", markup=False)
            with Horizontal(id="permission-buttons"):
                for decision, label in DECISION_BUTTONS:
                    yield Button(label, id=decision, variant="error" if decision == "deny" else "primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)
