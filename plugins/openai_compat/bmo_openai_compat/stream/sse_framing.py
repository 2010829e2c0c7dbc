"""Server-sent events for chat completions: ``data:`` lines, keep-alive comments, ``[DONE]``."""

from __future__ import annotations

import asyncio

from aiohttp import web

KEEPALIVE = b": keep-alive\n\n"


class ClientGone(Exception):
    """The client closed the connection while we were writing to it."""


class SseStream:
    """One SSE response; every write raises :class:`ClientGone` once the client has left."""

    def __init__(self, request: web.Request, headers: dict[str, str]):
        self.request = request
        self.response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold chunks back
            **headers,
        })
        self.open = False
        self.last_write = 0.0  # loop time of the last write, for keep-alive pacing

    async def start(self) -> None:
        await self._guard(self.response.prepare(self.request))
        self.open = True

    async def data(self, *payloads: bytes) -> None:
        """One ``data:`` event per payload, all in a single write."""
        await self._guard(self.response.write(b"".join(b"data: " + p + b"\n\n" for p in payloads)))

    async def raw(self, payload: bytes) -> None:
        """Already framed events (``event:``/``data:`` lines), in one write; the Responses API names its events."""
        await self._guard(self.response.write(payload))

    async def end(self) -> None:
        """Close the stream without ``[DONE]`` (the Responses API ends with its completed event)."""
        await self._guard(self.response.write_eof())

    async def keepalive(self) -> None:
        await self._guard(self.response.write(KEEPALIVE))

    async def done(self) -> None:
        await self._guard(self.response.write(b"data: [DONE]\n\n"))
        await self._guard(self.response.write_eof())

    async def _guard(self, awaitable) -> None:
        self.last_write = asyncio.get_running_loop().time()
        try:
            await awaitable
        except (ConnectionError, RuntimeError) as exc:  # aiohttp raises ClientConnectionResetError (a ConnectionError)
            raise ClientGone(str(exc)) from None


def client_gone(request: web.Request) -> bool:
    """True once the client's connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()
