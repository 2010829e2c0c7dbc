"""Writing server-sent events on an aiohttp response: headers, frames, bursts, keep-alives.

One :class:`SseWriter` is one ``text/event-stream`` response. Callers frame their events with
:func:`data_frame` / :func:`event_frame` (or hand raw payloads to :meth:`SseWriter.send`) and
write a whole burst with one call, so a burst of upstream chunks costs one socket write. A
write to a client that has left raises :class:`~bmo.streaming.disconnect.ClientGone`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bmo.streaming.disconnect import ClientGone

KEEPALIVE_COMMENT = b": keep-alive\n\n"
_SEP = b"\n\ndata: "


def _data_lines(payload: bytes) -> bytes:
    # A raw line end inside a payload would end the field early: each line becomes its own data: line.
    return b"\ndata: ".join(payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))


def data_frame(payload: bytes) -> bytes:
    """One event carrying ``payload`` as its data (line ends inside it become several ``data:`` lines)."""
    if b"\n" in payload or b"\r" in payload:
        payload = _data_lines(payload)
    return b"data: " + payload + b"\n\n"


def data_frames(payloads: tuple[bytes, ...] | list[bytes]) -> bytes:
    """One ``data:`` event per payload, as one buffer (the hot path: one join, two scans)."""
    if len(payloads) == 1:
        return data_frame(payloads[0])
    if not payloads:
        return b""
    joined = _SEP.join(payloads)
    if b"\r" in joined or joined.count(b"\n") != 2 * (len(payloads) - 1):
        joined = _SEP.join([_data_lines(p) for p in payloads])
    return b"data: " + joined + b"\n\n"


def event_frame(event: str, payload: bytes, event_id: str | None = None) -> bytes:
    """``event: <name>`` (and ``id:`` when given) then ``payload`` as the data."""
    head = b"event: " + event.encode()
    if event_id is not None:
        head += b"\nid: " + event_id.encode()
    return head + b"\n" + data_frame(payload)


def comment_frame(text: str) -> bytes:
    """A comment line: every client ignores it, every proxy sees traffic."""
    return b": " + text.replace("\r", " ").replace("\n", " ").encode() + b"\n\n"


class SseWriter:
    """One server-sent-events response; ``last_write`` is the loop time of the latest write."""

    def __init__(self, request: web.BaseRequest, headers: dict[str, str] | None = None, *,
                 content_type: str = "text/event-stream; charset=utf-8", keepalive: bytes = KEEPALIVE_COMMENT):
        self.request = request
        self.response = web.StreamResponse(status=200, headers={
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold chunks back
            **(headers or {}),
        })
        self.keepalive_frame = keepalive
        self.started = False
        self.last_write = asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Send the status line and headers: from here on the answer is a 200 stream."""
        await self._guard(self.response.prepare(self.request))
        self.started = True

    async def write(self, frames: bytes) -> None:
        """Already-framed events (a whole burst), in one write."""
        await self._guard(self.response.write(frames))

    async def send(self, *payloads: bytes) -> None:
        """One ``data:`` event per payload, all in one write."""
        await self._guard(self.response.write(data_frames(payloads)))

    async def keepalive(self) -> None:
        await self._guard(self.response.write(self.keepalive_frame))

    async def finish(self, last: bytes = b"") -> None:
        """Write ``last`` (e.g. a ``[DONE]`` frame) and end the response."""
        if last:
            await self._guard(self.response.write(last))
        await self._guard(self.response.write_eof())

    async def _guard(self, awaitable) -> None:
        self.last_write = asyncio.get_running_loop().time()
        try:
            await awaitable
        except (ConnectionError, RuntimeError) as exc:  # aiohttp raises ClientConnectionResetError (a ConnectionError)
            raise ClientGone(str(exc) or "client disconnected") from None
