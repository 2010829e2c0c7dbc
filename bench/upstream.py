"""A fast fake OpenAI-compatible upstream for benchmarks (not the test fake).

Raw asyncio HTTP/1.1 with keep-alive and precomputed bodies, so the upstream is never
the bottleneck. The requested ``model`` picks a *profile* (tokens per answer, chunk
count, delay between chunks); ``stream: true`` gets SSE in chunked encoding, otherwise
one ``chat.completion``. A request whose ``tool_choice`` names a function (BMO's
ambiguity router) gets a call of that function deciding ``clear``: BMO needs it to run,
and it is the only tool behaviour here.

Run: ``python -m bench.upstream --port 0 --profile short:16:16:0 --profile s256:256:256:0``;
prints ``READY <port>`` on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import dataclass

from bench.loop import run_loop

CREATED = 1700000000
WORDS = ("lorem ", "ipsum ", "dolor ", "sit ", "amet ", "elit ", "sed ", "do ")


@dataclass(frozen=True)
class Profile:
    """How one fake model answers."""

    name: str
    tokens: int
    chunks: int
    delay_s: float

    @classmethod
    def parse(cls, text: str) -> Profile:
        name, tokens, chunks, delay_ms = text.split(":")
        return cls(name, int(tokens), max(1, int(chunks)), float(delay_ms) / 1000.0)

    def pieces(self) -> list[str]:
        """The answer split into ``chunks`` pieces (tokens spread evenly)."""
        words = [WORDS[i % len(WORDS)] for i in range(self.tokens)]
        out: list[str] = []
        for i in range(self.chunks):
            lo, hi = i * self.tokens // self.chunks, (i + 1) * self.tokens // self.chunks
            out.append("".join(words[lo:hi]) or " ")
        return out

    def text(self) -> str:
        return "".join(self.pieces())


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _usage(profile: Profile) -> dict:
    return {"prompt_tokens": 8, "completion_tokens": profile.tokens, "total_tokens": 8 + profile.tokens}


def _http_json(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj) -> bytes:
    return _chunk(b"data: " + (obj if isinstance(obj, bytes) else _dumps(obj)) + b"\n\n")


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)
STREAM_END = _sse(b"[DONE]") + b"0\r\n\r\n"


class Answers:
    """Every response body, built once per profile (and per router tool name)."""

    def __init__(self, profiles: list[Profile]):
        self.profiles = {p.name: p for p in profiles}
        self.default = profiles[0]
        self._plain: dict[str, bytes] = {}
        self._stream: dict[str, list[bytes]] = {}
        self._usage_chunk: dict[str, bytes] = {}
        self._tool: dict[tuple[str, str, bool], bytes] = {}
        for p in profiles:
            self._build(p)
        self.models = _http_json(_dumps({
            "object": "list",
            "data": [{"id": n, "object": "model", "created": CREATED, "owned_by": "bench"} for n in self.profiles],
        }))

    def profile(self, model: str) -> Profile:
        return self.profiles.get(model, self.default)

    def _build(self, p: Profile) -> None:
        base = {"id": "chatcmpl-bench", "created": CREATED, "model": p.name}
        self._plain[p.name] = _http_json(_dumps({
            **base, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": p.text()}, "finish_reason": "stop"}],
            "usage": _usage(p),
        }))
        chunk = {**base, "object": "chat.completion.chunk"}
        frames = [_sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
        frames += [_sse({**chunk, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}) for t in p.pieces()]
        frames.append(_sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        self._stream[p.name] = frames
        self._usage_chunk[p.name] = _sse({**chunk, "choices": [], "usage": _usage(p)})

    def plain(self, p: Profile) -> bytes:
        return self._plain[p.name]

    def stream_frames(self, p: Profile, include_usage: bool) -> list[bytes]:
        frames = self._stream[p.name]
        return frames + [self._usage_chunk[p.name]] if include_usage else frames

    def tool_call(self, p: Profile, name: str, stream: bool) -> bytes:
        """A forced call of ``name`` answering ``clear`` (what BMO's router asks for)."""
        key = (p.name, name, stream)
        if key not in self._tool:
            args = _dumps({"decision": "clear", "question": ""}).decode()
            call = {"index": 0, "id": "call_bench", "type": "function", "function": {"name": name, "arguments": args}}
            base = {"id": "chatcmpl-bench", "created": CREATED, "model": p.name}
            if stream:
                chunk = {**base, "object": "chat.completion.chunk"}
                self._tool[key] = STREAM_HEAD + b"".join([
                    _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [call]}, "finish_reason": None}]}),
                    _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                    _sse({**chunk, "choices": [], "usage": _usage(p)}),
                ]) + STREAM_END
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [{k: v for k, v in call.items() if k != "index"}]}
                self._tool[key] = _http_json(_dumps({
                    **base, "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}], "usage": _usage(p),
                }))
        return self._tool[key]


class Stats:
    requests = 0
    router_calls = 0
    streams = 0
    disconnects = 0


NOT_FOUND = _http_json(b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}', "404 Not Found")
BAD_REQUEST = _http_json(b'{"error":{"message":"bad json","type":"invalid_request_error","param":null,"code":"bad_json"}}', "400 Bad Request")


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests, answer in order, stream when asked."""

    def __init__(self, answers: Answers, stats: Stats):
        self.answers = answers
        self.stats = stats
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.streaming: asyncio.Task | None = None
        self.pending: list[tuple[bytes, bytes]] = []  # requests that arrived while a stream was running

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.streaming is not None and not self.streaming.done():
            self.stats.disconnects += 1
            self.streaming.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            lower = head.lower()
            pos = lower.find(b"\r\ncontent-length:")
            if pos >= 0:
                stop = lower.find(b"\r\n", pos + 2)
                length = int(lower[pos + 17: stop if stop >= 0 else len(lower)].strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4: end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            request_line = head.split(b"\r\n", 1)[0]
            if self.streaming is not None and not self.streaming.done():
                self.pending.append((request_line, body))
            else:
                self.handle(request_line, body)

    def handle(self, request_line: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        parts = request_line.split(b" ")
        method, path = parts[0], parts[1] if len(parts) > 1 else b"/"
        if method == b"GET" and path.endswith(b"/models"):
            transport.write(self.answers.models)
            return
        if method != b"POST" or not path.endswith(b"/chat/completions"):
            transport.write(NOT_FOUND)
            return
        try:
            req = json.loads(body)
        except ValueError:
            transport.write(BAD_REQUEST)
            return
        self.stats.requests += 1
        profile = self.answers.profile(str(req.get("model", "")))
        stream = bool(req.get("stream"))
        choice = req.get("tool_choice")
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            self.stats.router_calls += 1
            transport.write(self.answers.tool_call(profile, str(choice["function"].get("name", "")), stream))
            return
        if not stream:
            transport.write(self.answers.plain(profile))
            return
        self.stats.streams += 1
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        frames = self.answers.stream_frames(profile, include_usage)
        if profile.delay_s <= 0:
            transport.write(STREAM_HEAD + b"".join(frames) + STREAM_END)
            return
        self.streaming = asyncio.ensure_future(self._slow_stream(frames, profile.delay_s))

    async def _slow_stream(self, frames: list[bytes], delay: float) -> None:
        try:
            self.transport.write(STREAM_HEAD + frames[0])
            for frame in frames[1:]:
                await asyncio.sleep(delay)
                if self.transport is None:
                    return
                self.transport.write(frame)
            self.transport.write(STREAM_END)
        except asyncio.CancelledError:
            return
        # Requests pipelined behind this stream are answered now, in order.
        self.streaming = None
        while self.pending and self.streaming is None and self.transport is not None:
            request_line, body = self.pending.pop(0)
            self.handle(request_line, body)


async def serve(port: int, profiles: list[Profile]) -> None:
    answers = Answers(profiles)
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(answers, stats), "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    print(json.dumps({"requests": stats.requests, "router_calls": stats.router_calls,
                      "streams": stats.streams, "disconnects": stats.disconnects}), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", action="append", default=[],
                        help="NAME:TOKENS:CHUNKS:DELAY_MS (first one is the default); repeatable")
    args = parser.parse_args(argv)
    profiles = [Profile.parse(p) for p in (args.profile or ["short:16:16:0"])]
    run_loop(serve(args.port, profiles))



if __name__ == "__main__":
    main()
