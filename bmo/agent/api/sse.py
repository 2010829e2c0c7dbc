"""Server-sent events for run streams: one ``event:`` per run event, keepalives while idle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from bmo.agent.events import RunFinished
from bmo.agent.run import Run

KEEPALIVE_S = 10.0
_encoder = msgspec.json.Encoder()


def event_frame(event: object, run: Run) -> bytes:
    """``event: <type>`` and a JSON ``data:`` line carrying the event plus run and session ids."""
    data = msgspec.to_builtins(event)
    data["run_id"] = run.id
    data["session_id"] = run.session_id
    return b"event: " + data["type"].encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


async def open_stream(request: web.Request, headers: dict[str, str] | None = None) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no", **(headers or {})})
    await resp.prepare(request)
    return resp


@contextlib.asynccontextmanager
async def pumped(run: Run) -> AsyncIterator[asyncio.Queue]:
    """A queue fed with the run's events, so a reader can wait with a timeout safely."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:
        async for event in run.events():
            queue.put_nowait(event)

    task = asyncio.create_task(pump())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def relay(resp: web.StreamResponse, run: Run, queue: asyncio.Queue) -> None:
    """Write the run's events from ``queue`` until RunFinished; ConnectionResetError if the client left."""
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
        except asyncio.TimeoutError:
            await resp.write(b": keepalive\n\n")  # also how a vanished client is noticed
            continue
        await resp.write(event_frame(event, run))
        if isinstance(event, RunFinished):
            return
