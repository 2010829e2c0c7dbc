"""A run's events as a server-sent-events stream: one ``event:`` frame per run event, keep-alives while idle.

Built on ``bmo.streaming``: the client's leaving is heard from ``connection_lost`` (a write or a
wait then raises ``ClientGone``, a ``ConnectionResetError``), events already waiting go out in
one write, and a ``: keepalive`` comment follows every ``KEEPALIVE_S`` of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator

import msgspec
from aiohttp import web

from bmo.agent.events import RunFinished
from bmo.agent.run import Run
from bmo.streaming import sse_writer
from bmo.streaming.disconnect import DisconnectWatch
from bmo.streaming.event_feed import END, EventFeed
from bmo.streaming.sse_writer import SseWriter

KEEPALIVE_S = 10.0
BURST_MAX = 512  # at most this many waiting events in one write
SHARED_POLL_S = 0.25  # on a shared store, how often a session follower looks for a run started elsewhere
_encoder = msgspec.json.Encoder()


def event_frame(event: object, run: Run) -> bytes:
    """``event: <type>`` and a JSON ``data:`` line carrying the event plus run and session ids."""
    data = msgspec.to_builtins(event)
    data["run_id"] = run.id
    data["session_id"] = run.session_id
    return sse_writer.event_frame(data["type"], _encoder.encode(data))


async def run_events(run: Run) -> AsyncIterator[tuple[Run, object]]:
    """One run's events, each paired with its run (the shape :class:`RunEventStream` reads)."""
    async for event in run.events():
        yield run, event


async def session_runs(co, session_id: str, since: float) -> AsyncIterator[tuple[Run, object]]:
    """The session's runs one after another (the active one from its start), until the coordinator closes;
    on a shared store also the runs another server holds, followed from the run event log."""
    seen: set[str] = set()
    while not co.closed:
        active = co.active_run(session_id)
        candidates = [r for r in co.runs() if r.session_id == session_id and r.id not in seen
                      and (r.started_at >= since or r is active)]
        if co.cluster is not None:
            candidates += [r for r in await _runs_elsewhere(co, session_id, since, seen)
                           if all(c.id != r.id for c in candidates)]
        if candidates:
            run = min(candidates, key=lambda r: r.started_at)
            seen.add(run.id)
            async for item in run_events(run):
                yield item
            continue
        if co.cluster is None:
            await co.next_run_started()
            continue
        with contextlib.suppress(TimeoutError):  # a run starting on another server wakes nothing here: polled
            await asyncio.wait_for(co.next_run_started(), SHARED_POLL_S)


async def _runs_elsewhere(co, session_id: str, since: float, seen: set[str]) -> list:
    """The session's runs in the shared store that this process does not hold, as followed runs."""
    found = []
    for run_id in await co.cluster.session_runs(session_id, since):
        if run_id in seen or co.get_run(run_id) is not None:
            continue
        run = await co.cluster.follow(run_id)
        if run is None:  # its events are gone (pruned) and it holds no lease: nothing to follow
            seen.add(run_id)
            continue
        found.append(run)
    return found


class RunEventStream:
    """One native SSE response fed by ``(run, event)`` pairs; ``close()`` it when the handler is done."""

    def __init__(self, request: web.Request, headers: dict[str, str], source: AsyncIterable[tuple[Run, object]]):
        self.writer = SseWriter(request, headers, content_type="text/event-stream", keepalive=b": keepalive\n\n")
        self.watch = DisconnectWatch(request)
        self.feed = EventFeed(source, self.watch)
        self._held: list = []

    @property
    def response(self) -> web.StreamResponse:
        return self.writer.response

    @property
    def started(self) -> bool:
        return self.writer.started

    async def first(self) -> object:
        """The first event, before the response starts (so it can still decide the status)."""
        self._held = await self.feed.take(BURST_MAX)
        item = self._held[0]
        return item[1] if isinstance(item, tuple) else item

    async def start(self, comment: str | None = None) -> None:
        await self.writer.start()
        if comment is not None:
            await self.writer.write(sse_writer.comment_frame(comment))

    async def relay(self, *, until_finished: bool) -> None:
        """Write events as they come, a burst per write, until a RunFinished (or the source's end)."""
        burst, self._held = self._held, []
        writer = self.writer
        while True:
            if not burst:
                burst = await self.feed.take(BURST_MAX, writer.last_write + KEEPALIVE_S)
                if not burst:
                    await writer.keepalive()
                    continue
            frames = []
            ended = False
            for item in burst:
                if item is END or isinstance(item, Exception):
                    ended = True
                    break
                run, event = item
                frames.append(event_frame(event, run))
                if until_finished and isinstance(event, RunFinished):
                    ended = True
                    break
            if frames:
                await writer.write(b"".join(frames))
            if ended:
                return
            burst = []

    def close(self) -> None:
        self.feed.close()
        self.watch.close()
