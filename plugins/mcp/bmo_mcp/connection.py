"""One live connection to one MCP server, held by one long-lived task.

The 2.x SDK's ``Client`` must be entered and exited by the same task, so a connection
owns a task that enters it, lists the tools, then serves tool calls that other tasks
(agent runs) hand it through a queue; each call runs as a child of that task and its
answer goes back through a future. Closing cancels that task's scope, which makes the
SDK end the session and stop (and if need be kill) a stdio child.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.types import CONNECTION_CLOSED

from bmo_mcp.config import McpServerOptions

CONNECTING, CONNECTED, FAILED, CLOSED = "connecting", "connected", "failed", "closed"
CLOSE_TIMEOUT_S = 15.0  # the SDK's own stdio shutdown is bounded to ~6 s (stdin close, SIGTERM, SIGKILL)
_STDERR_TAIL_BYTES = 600


class NotConnected(Exception):
    """The server is not (or no longer) connected; the message says why."""


@dataclass(eq=False)  # identity: calls live in a set
class _Call:
    tool: str
    arguments: dict
    future: asyncio.Future
    scope: anyio.CancelScope | None = field(default=None, repr=False)


def describe_error(exc: BaseException) -> str:
    """A one-line account of a failure, looking inside the task groups the SDK raises from."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


class McpConnection:
    """A connection to the server ``name``: start it, call its tools, close it."""

    def __init__(self, name: str, options: McpServerOptions, *, stderr_path: Path | None = None,
                 client_version: str = "0", record: Callable[..., Any] | None = None,
                 on_lost: Callable[[McpConnection], None] | None = None):
        self.name = name
        self._on_lost = on_lost  # called once when a connected server goes away (not at close)
        self.options = options
        self.stderr_path = stderr_path
        self.client_version = client_version
        self._record = record or (lambda *a, **k: None)
        self.state = CONNECTING
        self.tools: list[Any] = []  # mcp.types.Tool, as listed at connect time
        self.server_info: str = ""
        self.last_error = ""
        self.calls = 0
        self.failed_calls = 0
        self.connected_at: float | None = None
        self._queue: asyncio.Queue[_Call] = asyncio.Queue()
        self._pending: set[_Call] = set()  # queued or running, until their caller has the answer
        self._ready = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> bool:
        """Connect and list the tools, within ``startup_timeout_s``; True when connected."""
        self._task = asyncio.create_task(self._serve(), name=f"bmo-mcp-{self.name}")
        # The serving task enforces the startup deadline itself; this bound is only a backstop.
        try:
            await asyncio.wait_for(self._ready.wait(), self.options.startup_timeout_s + CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._fail(f"did not start within {self.options.startup_timeout_s:g} s")
            await self.close()
        return self.state == CONNECTED

    async def close(self) -> None:
        """End the session and stop a stdio child; bounded, safe to call twice."""
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
            if not done:  # the SDK's shutdown is bounded, so this is a last resort
                task.cancel()
                await asyncio.wait({task}, timeout=5)
        if self.state in (CONNECTING, CONNECTED):
            self.state = CLOSED

    # -- calls ---------------------------------------------------------------------
    async def call_tool(self, tool: str, arguments: dict) -> Any:
        """The server's ``CallToolResult``; raises NotConnected, TimeoutError or the SDK's MCPError."""
        if self.state != CONNECTED:
            raise NotConnected(self._unavailable())
        call = _Call(tool, arguments, asyncio.get_running_loop().create_future())
        self._pending.add(call)
        self._queue.put_nowait(call)
        self.calls += 1
        try:
            return await call.future
        except asyncio.CancelledError:
            if call.scope is not None:  # the run was cancelled: stop the server-side call too
                call.scope.cancel()
            call.future.cancel()
            raise
        except BaseException:
            self.failed_calls += 1
            raise
        finally:
            self._pending.discard(call)

    def _unavailable(self) -> str:
        if self.state == CLOSED:
            return f"MCP server {self.name!r} is closed (BMO is shutting down)"
        if self._closing:
            return f"MCP server {self.name!r} is shutting down"
        if self.state == FAILED:
            return f"MCP server {self.name!r} is not connected: {self.last_error}"
        return f"MCP server {self.name!r} is {self.state}"

    # -- the connection's own task -------------------------------------------------
    async def _serve(self) -> None:
        started = time.monotonic()
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.options.startup_timeout_s) as scope:
                self._scope = scope
                async with AsyncExitStack() as stack:
                    client = await self._open(stack)
                    self.tools = await self._list_tools(client)
                    info = client.server_info
                    self.server_info = f"{info.name} {info.version}".strip() if info is not None else ""
                    scope.deadline = math.inf  # started: from now on only close() ends it
                    self.state, self.connected_at = CONNECTED, time.time()
                    self._record("mcp.server.connected", server=self.name, transport=self.options.transport,
                                 tools=len(self.tools), server_info=self.server_info,
                                 elapsed_ms=round((time.monotonic() - started) * 1000, 1))
                    self._ready.set()
                    async with anyio.create_task_group() as calls:
                        while True:
                            try:
                                call = await asyncio.wait_for(self._queue.get(), self.options.ping_interval_s)
                            except TimeoutError:
                                await self._ping(client)
                                continue
                            calls.start_soon(self._run_call, client, call)
            if self.state == CONNECTING and not self._closing:
                self._fail(f"did not start within {self.options.startup_timeout_s:g} s{self._stderr_tail()}")
        except Exception as exc:  # noqa: BLE001 - a server's failure is reported, never raised into the host
            if not self._closing:
                self._fail(self._explain(exc) + self._stderr_tail())
        finally:
            was_connected = self.connected_at is not None
            if self.state == CONNECTED:
                if self._closing:
                    self.state = CLOSED
                else:
                    self._fail("the connection ended")
            self._drain()
            self._ready.set()
            if was_connected and not self._closing and self._on_lost is not None:
                self._on_lost(self)

    async def _ping(self, client: Any) -> None:
        """An idle connection's heartbeat: a server that does not answer in time is dead (raises).

        A tools/list page, not MCP ``ping``: every protocol version answers it (the SDK deprecates ping).
        """
        limit = min(self.options.ping_interval_s, 10.0)
        try:
            with anyio.fail_after(limit):
                await client.list_tools()
        except TimeoutError:
            raise ConnectionError(f"the server did not answer a heartbeat within {limit:g} s") from None

    def _explain(self, exc: BaseException) -> str:
        """The failure in words, naming a stdio command that is not there."""
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        if isinstance(inner, FileNotFoundError) and self.options.command:
            return (f"No such file: the command {self.options.command!r} was not found; install it or fix "
                    f"[mcp.{self.name}] command")
        return describe_error(exc)

    async def _open(self, stack: AsyncExitStack) -> Any:
        """Enter the SDK client on ``stack`` (transport, session, handshake)."""
        from mcp import Client
        from mcp.types import Implementation

        opts = self.options
        if opts.command:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(command=opts.command, args=list(opts.args), env=dict(opts.env) or None,
                                           cwd=opts.cwd or None)
            # Truncated at each start, so its tail is about this start.
            errlog = None
            if self.stderr_path is not None:
                errlog = stack.enter_context(await asyncio.to_thread(open, self.stderr_path, "w", encoding="utf-8"))
            transport = stdio_client(params, errlog=errlog) if errlog else stdio_client(params)
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # Our own HTTP client so configured headers go out; long reads for server-sent streams.
            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=dict(opts.headers), timeout=httpx2.Timeout(30.0, read=max(300.0, opts.timeout_s))))
            transport = streamable_http_client(opts.url, http_client=http)
        # Our own deadlines bound startup and each call; the SDK's read timeout is only a backstop behind them.
        client = Client(transport, read_timeout_seconds=max(opts.timeout_s, opts.startup_timeout_s) + 5,
                        client_info=Implementation(name="bmo", version=self.client_version))
        return await stack.enter_async_context(client)

    async def _list_tools(self, client: Any) -> list[Any]:
        tools: list[Any] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pagination never ends cannot hang startup
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _run_call(self, client: Any, call: _Call) -> None:
        if call.future.done():  # the caller gave up before the call started
            return
        try:
            with anyio.CancelScope() as scope:
                call.scope = scope
                with anyio.fail_after(self.options.timeout_s):
                    result = await client.call_tool(call.tool, call.arguments)
                if not call.future.done():
                    call.future.set_result(result)
        except TimeoutError:
            self.last_error = f"{call.tool}: timed out after {self.options.timeout_s:g} s"
            if not call.future.done():
                call.future.set_exception(TimeoutError(
                    f"{self.name} did not answer {call.tool} within {self.options.timeout_s:g} s ([mcp.{self.name}] timeout_s)"))
        except Exception as exc:  # noqa: BLE001 - whatever it is goes to the caller, who reports it
            self.last_error = f"{call.tool}: {describe_error(exc)}"
            if getattr(exc, "code", None) == CONNECTION_CLOSED:  # the server went away (a stdio child exited)
                if self.state == CONNECTED:
                    self._fail(f"the server closed the connection during {call.tool}; BMO reconnects with backoff "
                               f"(see the mcp posture), or restart BMO")
                exc = NotConnected(self._unavailable())
                if self._scope is not None:
                    self._scope.cancel()  # end the session so a stdio child is reaped and the state says failed
            if not call.future.done():
                call.future.set_exception(exc)
        # Cancelled with the whole connection: _drain answers the caller once the reason is known.

    def _drain(self) -> None:
        """Fail the calls still queued or running when the connection ends."""
        while not self._queue.empty():
            self._queue.get_nowait()
        for call in list(self._pending):
            if not call.future.done():
                call.future.set_exception(NotConnected(self._unavailable()))

    def _fail(self, error: str) -> None:
        self.state, self.last_error = FAILED, error
        self._record("mcp.server.failed", "error", server=self.name, transport=self.options.transport, error=error)

    def _stderr_tail(self) -> str:
        """The end of a stdio child's stderr, which usually says why it did not start."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        with open(self.stderr_path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - _STDERR_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace").strip()
        return f" (stderr: {tail.splitlines()[-1][:300]})" if tail else ""
