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
POLL_S = 0.5  # how often an idle stream checks whether its client is still there
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


def client_gone(request: web.Request) -> bool:
    """True once the client closed its connection (aiohttp drops the transport)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def idle(request: web.Request, resp: web.StreamResponse | None, waiter, deadline: list[float]) -> object:
    """Await ``waiter`` in short slices: ConnectionResetError when the client left, a keepalive when quiet.

    ``resp`` None: the response has not started yet, so no keepalive is written.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(waiter)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if client_gone(request):
                raise ConnectionResetError("client disconnected")
            if resp is not None and loop.time() >= deadline[0]:
                await resp.write(b": keepalive\n\n")
                deadline[0] = loop.time() + KEEPALIVE_S
    finally:
        if not task.done():
            task.cancel()


async def relay(request: web.Request, resp: web.StreamResponse, run: Run, queue: asyncio.Queue) -> None:
    """Write the run's events from ``queue`` until RunFinished; ConnectionResetError if the client left."""
    deadline = [asyncio.get_running_loop().time() + KEEPALIVE_S]
    while True:
        event = await idle(request, resp, queue.get(), deadline)
        await resp.write(event_frame(event, run))
        if isinstance(event, RunFinished):
            return
