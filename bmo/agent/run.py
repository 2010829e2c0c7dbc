"""A run: one agent turn on a session, its policy, and the event stream every subscriber replays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec

from bmo.agent.events import AnyEvent, RunFinished


class RunPolicy(msgspec.Struct, kw_only=True):
    """How a run may act; set by whoever starts it (a route, the TUI, a parent run)."""

    permission_mode: str = "ask"  # "ask": challenge; "auto_approve": approved by policy, audited as such
    allowed_classes: frozenset[str] | None = None  # e.g. {"read"} for research mode; None = all
    max_steps: int | None = None  # None: [agent] max_steps
    permission_timeout_s: float | None = None  # None: [agent] permission_timeout_s
    origin: str = "native"  # who started it ("openai_compat", "native", "spawn", ...)


PERMISSION_MODES = ("ask", "auto_approve")


class Run:
    """A running or finished run. ``events()`` replays from the first event for every subscriber."""

    def __init__(self, run_id: str, session_id: str, model: str, *, requester: str = "", policy: RunPolicy | None = None):
        self.id = run_id
        self.session_id = session_id
        self.model = model
        self.requester = requester
        self.policy = policy or RunPolicy()
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.result: RunFinished | None = None
        self.cancel_reason: str | None = None
        self._events: list[AnyEvent] = []
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.spawned = 0  # spawn_agent calls made by this run

    @property
    def done(self) -> bool:
        return self.result is not None

    def emit(self, event: AnyEvent) -> None:
        """Append an event and wake every subscriber; a RunFinished ends the stream."""
        if self.result is not None:
            return
        self._events.append(event)
        if isinstance(event, RunFinished):
            self.result = event
            self.finished_at = time.time()
            self._finished.set()
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    @property
    def history(self) -> list[AnyEvent]:
        """Every event so far."""
        return list(self._events)

    async def events(self) -> AsyncIterator[AnyEvent]:
        """The full sequence from the first event, then live ones, ending with RunFinished."""
        i = 0
        while True:
            while i < len(self._events):
                event = self._events[i]
                i += 1
                yield event
                if isinstance(event, RunFinished):
                    return
            waiter = self._wake
            if i < len(self._events):
                continue
            await waiter.wait()

    async def wait(self) -> RunFinished:
        await self._finished.wait()
        assert self.result is not None
        return self.result

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the upstream call and any running tool; the run ends with outcome ``cancelled``."""
        if self.done or self._task is None:
            return
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._task.cancel(reason)

    def attach(self, task: asyncio.Task) -> None:
        self._task = task

    def describe(self) -> dict:
        """A JSON-able summary for the native API."""
        out = {"id": self.id, "session_id": self.session_id, "model": self.model, "started_at": self.started_at,
               "done": self.done, "requester": self.requester, "origin": self.policy.origin}
        if self.result is not None:
            out.update(outcome=self.result.outcome, finish_reason=self.result.finish_reason,
                       finished_at=self.finished_at, error=self.result.error)
        return out
