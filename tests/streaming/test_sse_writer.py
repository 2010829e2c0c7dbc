"""The SSE writer, the disconnect watch and the event feed, on real sockets served as bmo serve serves."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from bmo.streaming.disconnect import ClientGone, DisconnectWatch
from bmo.streaming.event_feed import END, EventFeed
from bmo.streaming.sse_parser import SseEvent, SseParser
from bmo.streaming.sse_writer import (
    SseWriter,
    comment_frame,
    data_frame,
    data_frames,
    event_frame,
)
from tests.streaming.stream_server import serving, silent


def test_frames_parse_back_to_what_was_framed():
    parser = SseParser()
    frames = (data_frame(b'{"a": 1}') + data_frame(b"two\nlines\r\nand\rmore") + event_frame("run.finished", b"{}", "9")
              + comment_frame("keep\nalive") + data_frames([b"x", b"y\nz"]) + data_frames([b"p", b"q"]))
    assert parser.feed(frames) == [SseEvent('{"a": 1}'), SseEvent("two\nlines\nand\nmore"),
                                   SseEvent("{}", event="run.finished", id="9"), SseEvent("x", id="9"),
                                   SseEvent("y\nz", id="9"), SseEvent("p", id="9"), SseEvent("q", id="9")]
    assert data_frames([b"p", b"q"]) == data_frame(b"p") + data_frame(b"q") and data_frames([]) == b""


async def test_silence_gets_keepalive_comments_until_events_flow():
    source: asyncio.Queue = asyncio.Queue()

    async def events():
        while (item := await source.get()) is not None:
            yield item

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = SseWriter(request)
        await writer.start()
        with DisconnectWatch(request) as watch:
            feed = EventFeed(events(), watch)
            try:
                while True:
                    burst = await feed.take(64, writer.last_write + 0.05)
                    if not burst:
                        await writer.keepalive()
                        continue
                    payloads = [item for item in burst if item is not END]
                    if payloads:
                        await writer.send(*payloads)
                    if END in burst:
                        await writer.finish(b"data: [DONE]\n\n")
                        return writer.response
            finally:
                await feed.aclose()

    async with serving(handler) as url, aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Accel-Buffering"] == "no"
        seen = b""
        async with asyncio.timeout(10):
            while seen.count(b": keep-alive\n\n") < 2:  # silence: comments, and nothing else
                seen += await resp.content.readany()
            assert b"data:" not in seen
            source.put_nowait(b'"hello"')
            source.put_nowait(None)
            seen += await resp.content.read()
    assert [e.data for e in SseParser().feed(seen)] == ['"hello"', "[DONE]"]


async def test_events_already_waiting_are_taken_in_one_burst_without_waiting():
    async def fifty():
        for i in range(50):
            yield i

    feed = EventFeed(fifty())
    try:
        await asyncio.sleep(0)  # the copying task runs once: every item is buffered, END last
        assert await feed.take(30) == list(range(30))
        assert await feed.take(512) == [*range(30, 50), END]
        assert feed.waits == 0
    finally:
        await feed.aclose()


async def test_a_source_that_fails_hands_over_its_exception_then_end():
    async def broken():
        yield 1
        raise RuntimeError("upstream broke")

    feed = EventFeed(broken())
    try:
        burst = await feed.take(10)
        while END not in burst:
            burst += await feed.take(10)
        assert burst[0] == 1 and isinstance(burst[1], RuntimeError) and burst[2] is END
    finally:
        await feed.aclose()


async def test_a_deadline_with_nothing_to_take_returns_an_empty_burst():
    loop = asyncio.get_running_loop()
    feed = EventFeed(silent())
    try:
        assert await feed.take(10, loop.time() - 1) == []  # already past: no wait at all
        assert feed.waits == 0
        assert await feed.take(10, loop.time() + 0.01) == []
        assert await feed.take(10, loop.time() + 0.01) == []  # the one timer re-arms for each deadline
        assert feed.waits == 2
    finally:
        await feed.aclose()


async def _disconnect_is_heard(start_stream: bool) -> None:
    """A client closes its socket while the handler waits with no deadline: only connection_lost can wake it."""
    outcome: asyncio.Future = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = SseWriter(request)
        if start_stream:
            await writer.start()
            await writer.write(data_frame(b"first"))
        with DisconnectWatch(request) as watch:
            feed = EventFeed(silent(), watch)
            try:
                await feed.take(10)  # no deadline: no timer, no poll
                outcome.set_result("woken without a disconnect")
            except ClientGone:
                outcome.set_result("client gone")
            finally:
                await feed.aclose()
        return writer.response

    async with serving(handler) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        if start_stream:
            async with asyncio.timeout(10):
                assert b"data: first" in await reader.readuntil(b"data: first\n\n")
        else:
            await asyncio.sleep(0.05)  # let the request reach the handler (correctness does not hang on it)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        writer.close()
        async with asyncio.timeout(10):
            assert await outcome == "client gone"


async def test_a_client_that_closes_mid_stream_is_heard_from_connection_lost():
    await _disconnect_is_heard(start_stream=True)


async def test_a_client_that_closes_before_the_stream_starts_is_heard_too():
    await _disconnect_is_heard(start_stream=False)


async def test_writing_to_a_client_that_left_raises_client_gone():
    result: asyncio.Future = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = SseWriter(request)
        await writer.start()
        with DisconnectWatch(request) as watch:
            gone = asyncio.Event()
            watch.on_lost(gone.set)
            await gone.wait()
        try:
            await writer.send(b"too late")
            result.set_result("written")
        except ClientGone as exc:
            result.set_result(isinstance(exc, ConnectionResetError))
        return writer.response

    async with serving(handler) as url, aiohttp.ClientSession() as http:
        resp = await http.get(url)
        resp.close()
        async with asyncio.timeout(10):
            assert await result is True


async def test_after_a_stream_the_connection_goes_back_to_aiohttp_for_the_next_request():
    protocols: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        protocols.append(type(request.transport.get_protocol()).__name__)
        writer = SseWriter(request)
        with DisconnectWatch(request):
            protocols.append(type(request.transport.get_protocol()).__name__)
            await writer.start()
            await writer.finish(data_frame(b"done"))
        return writer.response

    connector = aiohttp.TCPConnector(limit=1)  # both requests on one kept-alive connection
    async with serving(handler) as url, aiohttp.ClientSession(connector=connector) as http:
        for _ in range(2):
            async with http.get(url) as resp:
                assert await resp.read() == b"data: done\n\n"
    assert protocols == ["RequestHandler", "_Relay", "RequestHandler", "_Relay"]


def test_the_disconnect_watch_works_on_uvloop_too():
    import uvloop  # a dependency of bmo (bmo serve runs on it): no skip

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_disconnect_is_heard(start_stream=True))
        runner.run(test_after_a_stream_the_connection_goes_back_to_aiohttp_for_the_next_request())


async def test_a_buffered_protocol_keeps_its_buffered_reads_behind_the_watch():
    loop = asyncio.get_running_loop()
    received = bytearray()
    lost: asyncio.Future = loop.create_future()
    transports: asyncio.Queue = asyncio.Queue()

    class Buffered(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.buffer = bytearray(64)
            transports.put_nowait(transport)

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            received.extend(self.buffer[:nbytes])

        def connection_lost(self, exc):
            lost.set_result(True)

    server = await loop.create_server(Buffered, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = await transports.get()
        watch = DisconnectWatch(type("Req", (), {"transport": transport})())
        assert type(transport.get_protocol()).__name__ == "_BufferedRelay"
        writer.write(b"through the relay")
        await writer.drain()
        writer.close()
        async with asyncio.timeout(10):
            assert await lost is True  # the inner protocol heard connection_lost first
        assert watch.lost and bytes(received) == b"through the relay"
        watch.close()
    finally:
        server.close()
        await server.wait_closed()
