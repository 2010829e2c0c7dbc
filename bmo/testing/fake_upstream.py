"""A scriptable OpenAI-compatible model server for tests: the only fake in BMO's test suite.

Serves ``GET /v1/models``, ``POST /v1/chat/completions`` (streaming and not) and the legacy
``POST /v1/completions`` (not streamed; 404 with ``legacy_completions=False``) on a real
socket. Tests queue replies with :meth:`FakeUpstream.script`; each chat request takes the next one, and when the queue is empty the server echoes the last user message. Every request is
recorded (body and headers), and a client that goes away mid-reply is counted, so a test can
``await up.wait_disconnect(timeout)`` to prove that BMO stopped an upstream call.

Usage::

    async with FakeUpstream(models=["m1"]) as up:
        up.script(reply("Hello", chunks=3), reply(tool_calls=[tool_call("read_file", {"path": "a"})]))
        ...  # point BMO at up.base_url
        assert up.chat_requests[-1].body["messages"][-1]["role"] == "tool"

Out of process: ``python -m bmo.testing.fake_upstream --port 8099`` serves echo replies; the
control routes ``POST /_fake/script`` (a JSON list of replies), ``GET /_fake/requests`` and
``POST /_fake/reset`` script it from another process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from bmo.streaming.sse_writer import data_frame
from bmo.testing.fake_completions import legacy_completion
from bmo.testing.fake_replies import (  # noqa: F401 - the scripting API, importable from here as before
    Reply,
    ScriptedToolCall,
    count_usage,
    drop_connection,
    echo_last_user,
    error,
    reply,
    tool_call,
)

DEFAULT_MODELS = ("fake-model",)


@dataclass
class RecordedRequest:
    """A request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or None
    time: float = field(default_factory=time.time)

    @property
    def messages(self) -> list[dict]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


class FakeUpstream:
    """The fake server; use as ``async with FakeUpstream() as up``."""

    def __init__(
        self,
        *,
        models: list[str] | tuple[str, ...] = DEFAULT_MODELS,
        default: Callable[[dict], Reply] = echo_last_user,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        legacy_completions: bool = True,
    ):
        self.models = list(models)
        self.default = default
        self.api_key = api_key  # when set, requests without "Bearer <api_key>" get 401
        self.legacy_completions = legacy_completions  # False: POST /v1/completions answers 404, as chat-only servers do
        self._host = host
        self._port = port
        self._queue: list[Reply] = []
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.completed = 0  # chat replies written to the end
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> "FakeUpstream":
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", functools.partial(legacy_completion, self))
        app.router.add_post("/_fake/script", self._control_script)
        app.router.add_get("/_fake/requests", self._control_requests)
        app.router.add_post("/_fake/reset", self._control_reset)
        # handler_cancellation: a client that disconnects cancels the handler, which we count.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeUpstream":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client uses as its OpenAI ``base_url`` (ends in ``/v1``)."""
        return self.url + "/v1"

    # -- scripting -----------------------------------------------------------------
    def script(self, *replies: Reply) -> "FakeUpstream":
        """Queue replies; each chat request takes the next one."""
        self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not yet played."""
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.disconnects = 0
        self.completed = 0

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """Requests to the legacy ``/v1/completions``."""
        return [r for r in self.requests if r.path == "/v1/completions"]

    async def wait_disconnect(self, timeout: float = 5.0, count: int = 1) -> int:
        """Wait until at least ``count`` clients went away mid-reply; TimeoutError otherwise."""
        await self._wait_for(lambda: self.disconnects >= count, timeout)
        return self.disconnects

    async def wait_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until ``count`` chat requests arrived."""
        await self._wait_for(lambda: len(self.chat_requests) >= count, timeout)
        return self.chat_requests

    async def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- handlers ------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(rec)
        await self._notify()
        return rec

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error_response(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key", {})

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        body = rec.body if isinstance(rec.body, dict) else {}
        scripted = self._queue.pop(0) if self._queue else self.default(body)
        try:
            return await self._play(request, body, scripted)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnects += 1
            await asyncio.shield(self._notify())
            raise

    async def _play(self, request: web.Request, body: dict, r: Reply) -> web.StreamResponse:
        if r.delay_s:
            await asyncio.sleep(r.delay_s)
        if r.drop:
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("fake upstream dropped the connection")
        if r.status != 200:
            return _error_response(r.status, r.error_message, r.error_type, r.error_code, r.headers)
        model = body.get("model", self.models[0] if self.models else "fake-model")
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        calls = [
            ScriptedToolCall(name=c.name, arguments=c.arguments, id=c.id or f"call_fake{next(self._ids)}")
            for c in r.tool_calls
        ]
        finish = r.finish_reason or ("tool_calls" if calls else "stop")
        usage = r.usage or count_usage(body, r)
        if body.get("stream"):
            return await self._stream(request, body, r, model, completion_id, calls, finish, usage)
        if r.stall:
            await asyncio.Event().wait()  # never answers; the client has to give up
        message: dict[str, Any] = {"role": "assistant", "content": r.full_text() or (None if calls else "")}
        if r.reasoning:
            message["reasoning_content"] = r.reasoning
        if r.refusal:
            message["refusal"] = r.refusal
        if calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        self.completed += 1
        await self._notify()
        return web.json_response({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }, headers=r.headers)

    async def _stream(self, request, body, r: Reply, model, completion_id, calls, finish, usage) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **r.headers})
        await resp.prepare(request)
        if r.raw_stream:
            await resp.write(r.raw_stream.encode())
            await resp.write_eof()
            self.completed += 1
            await self._notify()
            return resp
        created = int(time.time())

        async def send(delta: dict | None, finish_reason: str | None = None, *, usage_only: bool = False) -> None:
            chunk: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
            if usage_only:
                chunk["choices"] = []
                chunk["usage"] = usage
            else:
                chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
            await resp.write(data_frame(json.dumps(chunk).encode()))

        async def pause() -> None:
            if r.chunk_delay_s:
                await asyncio.sleep(r.chunk_delay_s)

        await send({"role": "assistant", "content": ""})
        for piece in _split(r.reasoning, 3):
            await pause()
            await send({"reasoning_content": piece})
        for piece in r.pieces():
            await pause()
            await send({"content": piece})
        for piece in _split(r.refusal, 2):
            await send({"refusal": piece})
        for index, call in enumerate(calls):
            await pause()
            await send({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                        "function": {"name": call.name, "arguments": ""}}]})
            for part in _split(call.arguments, 3):
                await pause()
                await send({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        while r.endless:  # an endless trickle: only the client's leaving ends it
            await asyncio.sleep(r.chunk_delay_s)
            await send({"content": "."})
        if r.stall:
            await asyncio.Event().wait()  # hang mid-stream until the client leaves
        await send({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(None, usage_only=True)
        await resp.write(data_frame(b"[DONE]"))
        await resp.write_eof()
        self.completed += 1
        await self._notify()
        return resp

    # -- out-of-process control ----------------------------------------------------
    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            replies = msgspec.json.decode(await request.read(), type=list[Reply])
        except msgspec.ValidationError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.script(*replies)
        return web.json_response({"queued": len(replies), "pending": self.pending})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response({
            "requests": [{"method": r.method, "path": r.path, "headers": r.headers, "body": r.body} for r in self.requests
                         if not r.path.startswith("/_fake/")],
            "disconnects": self.disconnects,
            "pending": self.pending,
        })

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _error_response(status: int, message: str, type_: str, code: str | None, headers: dict) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


async def _serve_forever(args: argparse.Namespace) -> None:
    up = FakeUpstream(models=args.model or list(DEFAULT_MODELS), host=args.host, port=args.port, api_key=args.api_key)
    await up.start()
    print(f"fake upstream serving on {up.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await up.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A scriptable OpenAI-compatible fake model server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--model", action="append", help="model id to list (repeatable)")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    try:
        asyncio.run(_serve_forever(parser.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
