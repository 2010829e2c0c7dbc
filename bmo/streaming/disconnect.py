"""Noticing that an HTTP client went away, from the connection's ``connection_lost`` callback.

aiohttp 3.x tells a handler nothing when its client leaves: ``handler_cancellation`` is a
server-wide switch that cancels every handler mid-work, ``Request.wait_for_disconnection`` was
removed again in 3.10, and polling ``transport.is_closing()`` costs a timer per stream and up
to a poll interval of delay. So :class:`DisconnectWatch` puts a thin relay in front of
aiohttp's protocol on the request's transport (asyncio's public ``set_protocol``), hears
``connection_lost`` the moment the event loop does, and puts aiohttp's protocol back when the
response is over, so keep-alive goes on as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web


class ClientGone(ConnectionResetError):
    """The client closed its connection (a ``ConnectionResetError``, as aiohttp's own write errors are)."""


class _Relay(asyncio.Protocol):
    """Passes every callback on to aiohttp's protocol, and reports ``connection_lost`` after it."""

    __slots__ = ("inner", "lost")

    def __init__(self, inner: asyncio.BaseProtocol, lost: Callable[[], None]):
        self.inner = inner
        self.lost = lost

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)  # aiohttp first: its writer is closed before anyone reacts
        self.lost()


class _BufferedRelay(_Relay, asyncio.BufferedProtocol):
    """The same relay for a buffered protocol (the transport picks its read path by type)."""

    __slots__ = ()

    def get_buffer(self, sizehint: int):
        return self.inner.get_buffer(sizehint)  # type: ignore[attr-defined]

    def buffer_updated(self, nbytes: int) -> None:
        self.inner.buffer_updated(nbytes)  # type: ignore[attr-defined]


class DisconnectWatch:
    """``lost`` turns True, and the callbacks run once, when the request's connection is lost.

    Use it as a context manager (or call :meth:`close`) around the response, so that the
    transport gets aiohttp's own protocol back when the response is done.
    """

    def __init__(self, request: web.BaseRequest):
        self.lost = False
        self._callbacks: list[Callable[[], None]] = []
        self._transport = request.transport
        self._inner: asyncio.BaseProtocol | None = None
        self._relay: _Relay | None = None
        transport = self._transport
        if transport is None or transport.is_closing():
            self.lost = True  # already gone before we looked
            return
        inner = transport.get_protocol()
        relay_type = _BufferedRelay if isinstance(inner, asyncio.BufferedProtocol) else _Relay
        self._relay = relay_type(inner, self._on_lost)
        self._inner = inner
        transport.set_protocol(self._relay)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the client leaves (at once if it already has)."""
        if self.lost:
            callback()
        else:
            self._callbacks.append(callback)

    def _on_lost(self) -> None:
        if self.lost:
            return
        self.lost = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def close(self) -> None:
        """Hand the transport back to aiohttp's protocol; no callback runs after this."""
        transport, inner = self._transport, self._inner
        if inner is not None and transport is not None and not self.lost and transport.get_protocol() is self._relay:
            transport.set_protocol(inner)
        self._inner = self._relay = None
        self._callbacks = []

    def __enter__(self) -> DisconnectWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
