"""A real aiohttp server for the streaming tests, run the way ``bmo serve`` runs (no handler cancellation)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on ``GET /stream`` at 127.0.0.1; yields the URL."""
    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


async def silent() -> AsyncIterator[object]:
    """An event source that never yields (a model still thinking)."""
    await asyncio.Event().wait()
    yield None  # pragma: no cover - never reached
