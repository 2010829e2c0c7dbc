"""A run: one agent turn on a session, its policy, and the event stream every subscriber replays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec

from bmo.agent.events import AnyEvent, ReasoningDelta, RunFinished, TextDelta


class RunPolicy(msgspec.Struct, kw_only=True):
    """How a run may act; set by whoever starts it (a route, the TUI, a parent run)."""

    permission_mode: str = "ask"  # "ask": challenge; "auto_approve": approved by policy, audited as such
    allowed_classes: frozenset[str] | None = None  # e.g. {"read"} for research mode; None = all
    max_steps: int | None = None  # None: [agent] max_steps
    permission_timeout_s: float | None = None  # None: [agent] permission_timeout_s
    origin: str = "native"  # who started it ("openai_compat", "native", "spawn", ...)
    announce_waits: bool = False  # a permission wait is also said in the answer text (a chat shows nothing else)


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
        self.error_detail: str | None = None  # a failure's full text (records, ledgers), never sent to clients
        self._events: list[AnyEvent] = []
        # Subscribers waiting for the next event; an emit with nobody waiting wakes nothing (the streaming hot path).
        self._waiters: list[asyncio.Future] = []
        self._listeners: list[tuple[Callable[[AnyEvent], None], Callable[[], None]]] = []  # see listen()
        self._finished = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.spawned = 0  # spawn_agent calls made by this run
        self._on_finish: list[Callable[[Run], None]] = []

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
            # A new list, not an edit: subscribers still replaying hold the full one until they end.
            self._events = compact(self._events, event)
            self._finished.set()
            for callback in self._on_finish:
                callback(self)
        if self._listeners:
            listeners = self._listeners
            if self.result is not None:
                self._listeners = []
            for on_event, on_end in tuple(listeners):  # a copy: a listener may stop (and leave the list) meanwhile
                on_event(event)
                if self.result is not None:
                    on_end()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @property
    def history(self) -> list[AnyEvent]:
        """Every event so far."""
        return list(self._events)

    async def events(self) -> AsyncIterator[AnyEvent]:
        """The full sequence from the first event, then live ones, ending with RunFinished.

        A subscriber that comes after the run finished gets the compacted sequence: the same
        events and the same text, with each stretch of deltas as one delta.
        """
        # Bound once: a finished run swaps in its compacted list, and this replay goes on reading the list it started on.
        events = self._events
        i = 0
        while True:
            while i < len(events):
                event = events[i]
                i += 1
                yield event
                if isinstance(event, RunFinished):
                    return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():  # the subscriber left (cancelled): forget its waiter
                    waiter.cancel()

    def listen(self, on_event: Callable[[AnyEvent], None], on_end: Callable[[], None]) -> Callable[[], None]:
        """What :meth:`events` yields, as calls: ``on_event`` for each event from the first (the ones so far at
        once), ``on_end()`` after the RunFinished. No task and no generator per event. Returns the way to stop."""
        for event in self._events:
            on_event(event)
        if self.result is not None:
            on_end()
            return _nothing
        entry = (on_event, on_end)
        self._listeners.append(entry)

        def stop() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return stop

    def on_finish(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` as the run emits its RunFinished (at once if it already has)."""
        if self.done:
            callback(self)
        else:
            self._on_finish.append(callback)

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
        # A kept finished run must not pin its task (and through it the context and span): GC cost.
        task.add_done_callback(self._release_task)

    def _release_task(self, task: asyncio.Task) -> None:
        if self._task is task:
            self._task = None

    def describe(self) -> dict:
        """A JSON-able summary for the native API."""
        out = {"id": self.id, "session_id": self.session_id, "model": self.model, "started_at": self.started_at,
               "done": self.done, "requester": self.requester, "origin": self.policy.origin}
        if self.result is not None:
            out.update(outcome=self.result.outcome, finish_reason=self.result.finish_reason,
                       finished_at=self.finished_at, error=self.result.error)
        return out


def describe_run_row(row: dict) -> dict:
    """:meth:`Run.describe` of a run known only by its ``runs`` row (one another server ran)."""
    out = {"id": row["id"], "session_id": row["session_id"], "model": row["model"], "started_at": row["started_at"],
           "done": row["outcome"] is not None, "requester": row["requester"], "origin": row["origin"]}
    if row["outcome"] is not None:
        out.update(outcome=row["outcome"], finish_reason=row["finish_reason"], finished_at=row["finished_at"],
                   error=row["error"])
    return out


def _nothing() -> None:
    return None


def compact(events: list[AnyEvent], finished: RunFinished) -> list[AnyEvent]:
    """The events of a finished run with each stretch of consecutive deltas of one kind merged.

    A streamed answer is one TextDelta per upstream chunk; kept for ten minutes per run, those
    objects dominate memory. Merging keeps the order and the text (a replay after the run ended
    still delivers the whole answer), at one object per stretch.
    """
    out: list[AnyEvent] = []
    pending: list[str] = []
    kind: type | None = None

    def flush() -> None:
        if kind is None:
            return
        text = "".join(pending)
        if kind is TextDelta and text == finished.text:
            text = finished.text  # the usual one-stretch answer shares RunFinished's string
        out.append(kind(text=text))

    for event in events:
        if type(event) in (TextDelta, ReasoningDelta):
            if type(event) is not kind:
                flush()
                kind, pending = type(event), []
            pending.append(event.text)
            continue
        flush()
        kind, pending = None, []
        out.append(event)
    flush()
    return out
