"""The BMO TUI: chat with a session, run slash commands, answer permission challenges in place."""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Input

from bmo.tui.client import BmoApiError, BmoClient
from bmo.tui.widgets import Message, PermissionScreen, Sidebar

LOCAL_COMMANDS = {
    "help": "list commands",
    "new": "start a new session",
    "cancel": "cancel the running run",
    "quit": "leave the TUI",
}
SIDEBAR_REFRESH_S = 5.0


def server_problem(status: int) -> str:
    """The sidebar's ``server:`` value when the server answered with an error."""
    if status == 401:
        return "token wrong or missing (bmo tui --auth-token TOKEN, or BMO_AUTH_TOKEN)"
    return f"error {status}"


def decider(decided_by: str) -> str:
    """``user:alice`` as is; ``user:`` (no name known) as ``user``."""
    return decided_by.rstrip(":") or "unknown"


class BmoApp(App):
    """A client of a running ``bmo serve``; everything it shows comes over HTTP."""

    CSS_PATH = "app.tcss"
    TITLE = "BMO"
    BINDINGS = [("ctrl+c", "quit", "Quit"), ("ctrl+x", "cancel_run", "Cancel run")]

    def __init__(self, url: str, token: str | None = None, session_id: str | None = None, model: str | None = None):
        super().__init__()
        self.url = url
        self.token = token
        self.session_id = session_id
        self.model = model or ""
        self.run_status = "idle"
        self.client: BmoClient | None = None
        self.messages: list[Message] = []  # kept past unmount so a finished session can be read

    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield VerticalScroll(id="chat")
            yield Input(placeholder="Message, or /help", id="prompt")
        yield Sidebar()
        yield Footer()

    async def on_mount(self) -> None:
        self.client = BmoClient(self.url, self.token)
        self.query_one("#prompt", Input).focus()
        self.open_session()
        self.refresh_sidebar()
        self.set_interval(SIDEBAR_REFRESH_S, self.refresh_sidebar)

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.close()

    # -- what the conversation shows ----------------------------------------------------
    def say(self, role: str, text: str) -> Message:
        message = Message(role, text)
        self.messages.append(message)
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(message)
        chat.scroll_end(animate=False)
        return message

    def transcript(self) -> list[tuple[str, str]]:
        """(role, text) of every entry, oldest first."""
        return [(m.role, m.text) for m in self.messages]

    def _show_session(self) -> None:
        self.query_one(Sidebar).show_session(self.session_id or "-", self.model or "-", self.run_status)

    # -- workers ------------------------------------------------------------------------
    @work(exclusive=True, group="session")
    async def open_session(self, new: bool = False) -> None:
        assert self.client is not None
        try:
            if self.session_id and not new:
                session = await self.client.get_session(self.session_id)
                for m in session.get("messages", []):
                    if m.get("role") in ("user", "assistant") and m.get("content"):
                        self.say(m["role"], m["content"])
            else:
                session = await self.client.create_session(self.model or None)
        except (BmoApiError, OSError) as exc:
            self.say("error", f"Cannot open a session on {self.url}: {exc}")
            return
        self.session_id = session["id"]
        self.model = session.get("model", self.model)
        self.say("notice", f"Session {self.session_id} on {self.model}. Type /help for commands.")
        self._show_session()

    @work(group="sidebar")
    async def refresh_sidebar(self) -> None:
        assert self.client is not None
        try:
            rows = await self.client.sidebar()
        except BmoApiError as exc:
            rows = [{"label": "server", "value": server_problem(exc.status)}]
        except OSError:
            rows = [{"label": "server", "value": "unreachable"}]
        self.query_one(Sidebar).show_indicators(rows)

    @work(exclusive=True, group="run")
    async def send(self, text: str) -> None:
        assert self.client is not None
        if not self.session_id:
            self.say("error", "No session yet; try /new.")
            return
        answer: Message | None = None
        self.run_status = "running"
        self._show_session()
        try:
            async for event in self.client.send(self.session_id, text):
                kind = event.get("type")
                if kind == "text.delta":
                    if answer is None:
                        answer = self.say("assistant", "")
                    answer.append(event["text"])
                    self.query_one("#chat", VerticalScroll).scroll_end(animate=False)
                elif kind == "tool.started":
                    self.say("tool", f"⚙ {event['name']}({event['arguments']})")
                    answer = None
                elif kind == "tool.finished":
                    mark = "✓" if event["ok"] else "✗"
                    self.say("tool", f"{mark} {event['name']}: {event['summary']}")
                elif kind == "permission.requested":
                    self.push_screen(PermissionScreen(event), callback=self._decider(event["permission_id"]))
                elif kind == "permission.decided":
                    self.say("notice", f"{event['tool']}: {event['decision']} ({decider(event['decided_by'])})")
                elif kind == "run.finished":
                    self.run_status = event["outcome"]
                    if event.get("error"):
                        self.say("error", event["error"])
                    elif answer is None and event.get("text"):
                        self.say("assistant", event["text"])
        except (BmoApiError, OSError) as exc:
            self.run_status = "failed"
            self.say("error", str(exc))
        self._show_session()

    def _decider(self, permission_id: str):
        def decided(decision: str | None) -> None:
            self.decide(permission_id, decision or "deny")
        return decided

    @work(group="decide")
    async def decide(self, permission_id: str, decision: str) -> None:
        assert self.client is not None and self.session_id
        try:
            await self.client.decide(self.session_id, permission_id, decision)
        except BmoApiError as exc:
            self.say("error", f"Permission answer not taken: {exc.message}")

    @work(group="slash")
    async def run_slash(self, line: str) -> None:
        assert self.client is not None
        try:
            text = await self.client.slash(line, width=max(40, self.size.width - 40))
        except (BmoApiError, OSError) as exc:
            self.say("error", str(exc))
            return
        if text.startswith("Unknown command"):  # the server knows only its own; the TUI adds its commands
            text += ". TUI commands: " + ", ".join(f"/{k}" for k in LOCAL_COMMANDS)
        self.say("notice", text)

    # -- input --------------------------------------------------------------------------
    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        if text.startswith("/"):
            await self.command(text)
            return
        self.say("user", text)
        self.send(text)

    async def command(self, line: str) -> None:
        name = line[1:].split(" ", 1)[0]
        if name == "quit":
            self.exit()
        elif name == "new":
            self.query_one("#chat", VerticalScroll).remove_children()
            self.messages.clear()
            self.open_session(new=True)
        elif name == "cancel":
            await self.action_cancel_run()
        elif name == "help":
            lines = [f"/{k}  {v}" for k, v in LOCAL_COMMANDS.items()]
            try:
                assert self.client is not None
                for cmd in await self.client.slash_commands():
                    aliases = "".join(f", /{a}" for a in cmd["aliases"])
                    lines.append(f"/{cmd['name']}{aliases}  {cmd['help']}")
            except (BmoApiError, OSError):
                pass
            self.say("notice", "\n".join(lines))
        else:
            self.run_slash(line)

    async def action_cancel_run(self) -> None:
        if self.client is None or not self.session_id:
            return
        try:
            result = await self.client.cancel(self.session_id)
            self.say("notice", f"Run cancelled ({result['outcome']}).")
        except BmoApiError as exc:
            self.say("error", exc.message)
