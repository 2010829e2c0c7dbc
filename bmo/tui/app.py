"""The BMO TUI: chat with a session, run slash commands, answer permission challenges in place.

The TUI follows its session's event stream, so a run another client started on it (an
OpenAI-compat request, a script) shows here too, and its permission prompts can be answered here.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Input

from bmo.tui.client import BmoApiError, BmoClient
from bmo.tui.run_view import RunView, decider
from bmo.tui.widgets import Message, PermissionScreen, Sidebar

__all__ = ["BmoApp", "decider", "server_problem"]

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


class BmoApp(App):
    """A client of a running ``bmo serve``; everything it shows comes over HTTP."""

    CSS_PATH = "app.tcss"
    TITLE = "BMO"
    # Priority: the prompt's Input would otherwise take Ctrl+X (cut), and a dialog must not hide it.
    BINDINGS = [("ctrl+c", "quit", "Quit"), Binding("ctrl+x", "cancel_run", "Cancel run", priority=True)]

    def __init__(self, url: str, token: str | None = None, session_id: str | None = None, model: str | None = None):
        super().__init__()
        self.url = url
        self.token = token
        self.session_id = session_id
        self.model = model or ""
        self.run_status = "idle"
        self.client: BmoClient | None = None
        self.messages: list[Message] = []  # kept past unmount so a finished session can be read
        self.own_runs: set[str] = set()  # runs this TUI started: their events come on their own stream
        self._naming_run: asyncio.Future | None = None  # a send whose run id the server has not named yet
        self.asked: set[str] = set()  # permission ids a dialog was opened for

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

    def scroll_chat(self) -> None:
        self.query_one("#chat", VerticalScroll).scroll_end(animate=False)

    def ask_permission(self, event: dict) -> None:
        """Open the dialog for a challenge, once, whichever stream (own run or followed) brought it."""
        if event["permission_id"] in self.asked:
            return
        self.asked.add(event["permission_id"])
        self.push_screen(PermissionScreen(event), callback=self._decider(event["permission_id"]))

    def permission_decided(self, permission_id: str) -> None:
        """Decided elsewhere (another client, the timeout): close its dialog without answering."""
        screen = self.screen
        if isinstance(screen, PermissionScreen) and screen.event["permission_id"] == permission_id:
            screen.dismiss(None)

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
        self.follow_session(self.session_id)

    @work(exclusive=True, group="follow")
    async def follow_session(self, session_id: str) -> None:
        """Show the session's runs started by other clients, and let their permission prompts be answered here."""
        assert self.client is not None
        views: dict[str, RunView | None] = {}  # run id -> its view; None for this TUI's own runs
        try:
            async for event in self.client.follow(session_id):
                run_id = event.get("run_id", "")
                if run_id not in views:
                    if self._naming_run is not None and not self._naming_run.done():
                        await asyncio.shield(self._naming_run)  # it may be this TUI's own run, about to be named
                    if run_id in self.own_runs:
                        views[run_id] = None
                    else:
                        views[run_id] = RunView(self)
                        self.run_status = "running"
                        self.say("notice", f"Run {run_id} on this session, started by another client.")
                        self._show_session()
                view = views[run_id]
                if view is not None:
                    view.show(event)
                    if view.finished:
                        self._show_session()
        except (BmoApiError, OSError) as exc:
            if session_id == self.session_id:
                self.say("error", f"Stopped following session {session_id}: {exc}")

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
        view = RunView(self)
        self.run_status = "running"
        self._show_session()
        naming = self._naming_run = asyncio.get_running_loop().create_future()

        def named(run_id: str) -> None:
            self.own_runs.add(run_id)
            if not naming.done():
                naming.set_result(run_id)

        try:
            async for event in self.client.send(self.session_id, text, on_run=named):
                view.show(event)
        except (BmoApiError, OSError) as exc:
            self.run_status = "failed"
            self.say("error", str(exc))
        finally:
            if not naming.done():
                naming.set_result(None)
        self._show_session()

    def _decider(self, permission_id: str):
        def decided(decision: str | None) -> None:
            if decision is not None:  # None: the dialog closed because the challenge was decided elsewhere
                self.decide(permission_id, decision)
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
            self.action_cancel_run()
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

    def action_cancel_run(self) -> None:
        """Cancel the session's running run, whoever started it (this TUI, a compat request, a script)."""
        if self.client is not None and self.session_id:
            self.cancel_run()

    @work(exclusive=True, group="cancel")
    async def cancel_run(self) -> None:
        assert self.client is not None and self.session_id
        try:
            result = await self.client.cancel(self.session_id)
            self.say("notice", f"Run cancelled ({result['outcome']}).")
        except (BmoApiError, OSError) as exc:
            self.say("error", exc.message if isinstance(exc, BmoApiError) else str(exc))
