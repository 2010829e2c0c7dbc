"""Turning an agent run's events into the client's answer: one JSON body, or an SSE stream.

The HTTP status is decided on the run's first event that says something (an upstream that
fails before its first byte becomes a plain error response); after that the stream is open and
a failure travels as a ``data: {"error": ...}`` event. Silence longer than the keep-alive
interval gets a ``: keep-alive`` comment. A client that goes away cancels the run it started;
its leaving is heard from the connection's ``connection_lost`` (``bmo.streaming``), not polled.
Events that are already waiting when the stream takes one go out together, in one write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from bmo.agent import events as ev
from bmo.agent import run_outcomes
from bmo.server.errors import ApiError, ErrorEnvelope
from bmo.streaming.disconnect import ClientGone, DisconnectWatch
from bmo.streaming.event_feed import END, EventFeed
from bmo.streaming.sse_writer import SseWriter
from bmo_openai_compat import wire
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.stream.chunks import Answer

DONE = b"data: [DONE]\n\n"
# After cancelling, how long we wait for the run to confirm it stopped before closing the books.
CANCEL_WAIT_S = 10.0
CLIENT_CLOSED = 499  # nginx's status for "client closed the request"; only ever in the ledger
# At most this many already-queued events are turned into one write (bounds one write's size).
BURST_MAX = 512


@dataclass
class Verdict:
    """How a finished run ends the request."""

    outcome: str
    status: int
    error: str | None = None
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def judge(fin: ev.RunFinished, success_outcome: str) -> Verdict:
    """Map the agent's run outcome onto the compat outcome enum and an HTTP status."""
    if fin.outcome in (run_outcomes.FINAL_ANSWER, run_outcomes.CLIENT_TOOL_CALLS):
        return Verdict(success_outcome, 200)
    if fin.outcome in (run_outcomes.LOOP_DETECTED, run_outcomes.MAX_STEPS) and fin.text:
        return Verdict(success_outcome, 200)  # the answer so far is still an answer
    if fin.outcome == run_outcomes.CANCELLED:
        return Verdict(outcomes.CANCELLED, 503, fin.error or "The run was cancelled (server stopping or an operator "
                                                             "cancelled it); send the request again.", "cancelled")
    if fin.outcome == run_outcomes.INVALID_OUTPUT:  # a format the model cannot meet is the upstream's failure
        return Verdict(outcomes.ERROR_500, 502, fin.error or "The model's answer does not meet response_format.",
                       "invalid_model_output")
    if fin.outcome == run_outcomes.RECOVERY_FAILED:
        return Verdict(outcomes.RECOVERY_FAILED, 502, fin.error or "The model ran tools but gave no final answer, "
                                                                   "even after a recovery prompt.", "recovery_failed")
    if fin.outcome == run_outcomes.ERROR:
        status = fin.error_status or 502
        return Verdict(outcomes.ERROR_500, status, fin.error or "The agent run failed.", fin.error_code)
    if fin.outcome in outcomes.SEVERITY:  # a tool's own outcome (ToolEndedRun) that the compat enum names
        return Verdict(fin.outcome, 502, fin.error or f"The agent stopped without an answer: {fin.outcome}.", fin.outcome)
    reason = {run_outcomes.LOOP_DETECTED: "the same tool call kept repeating",
              run_outcomes.MAX_STEPS: "it reached [agent] max_steps"}.get(fin.outcome, fin.outcome)
    return Verdict(outcomes.ERROR_500, 500, f"The agent stopped without an answer: {reason}.", fin.outcome)


class RunDelivery:
    """Delivers one run to one client; ``rt.finish`` is called exactly once on the way out."""

    def __init__(self, request: web.Request, rt: CompatRequest, run, *, stream: bool, include_usage: bool,
                 model: str, headers: dict[str, str], keepalive_s: float, cancel_on_disconnect: bool,
                 success_outcome: str, finish_detail: dict | None = None):
        self.request = request
        self.rt = rt
        self.run = run
        self.stream = stream
        self.include_usage = include_usage
        self.answer = Answer(rt.request_id, model)
        self.headers = headers
        self.keepalive_s = max(0.05, keepalive_s)
        self.cancel_on_disconnect = cancel_on_disconnect
        self.success_outcome = success_outcome
        self.finish_detail = dict(finish_detail or {})
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.sse: SseWriter | None = None
        self.frames: list[bytes] = []  # SSE payloads waiting for the next write

    async def respond(self) -> web.StreamResponse:
        watch = DisconnectWatch(self.request)
        listen = getattr(self.run, "listen", None)  # a local Run calls back; a run followed from elsewhere is iterated
        feed = EventFeed.listening(listen, watch) if listen is not None else EventFeed(self.run.events(), watch)
        try:
            return await (self._stream(feed) if self.stream else self._collect(feed))
        except asyncio.CancelledError:
            # The server cancelled the handler (client gone with handler cancellation on, or shutdown).
            if self.cancel_on_disconnect:
                self.run.cancel("client disconnected")
            await asyncio.shield(self.rt.finish(outcomes.CANCELLED, CLIENT_CLOSED, error="request cancelled",
                                                **self.finish_detail))
            raise
        finally:
            feed.close()
            watch.close()

    # -- non-streamed ---------------------------------------------------------------
    async def _collect(self, feed: EventFeed) -> web.StreamResponse:
        while True:
            try:
                burst = await feed.take(BURST_MAX)
            except ClientGone:
                return await self._client_left("waiting for the answer")
            for event in burst:
                fin = await self._observe(event)
                if fin is not None:
                    return await self._collect_end(fin)

    async def _collect_end(self, fin: ev.RunFinished) -> web.StreamResponse:
        verdict = judge(fin, self.success_outcome)
        if not verdict.ok:
            await self._finish(verdict, fin)
            return self._error_response(verdict)
        body = self.answer.completion(
            fin.text or "".join(self.text), fin.finish_reason, fin.usage,
            tool_calls=fin.tool_calls, reasoning="".join(self.reasoning), refusal=fin.refusal,
        )
        await self._finish(verdict, fin)
        return web.Response(body=body, content_type="application/json", headers=self.headers)

    # -- streamed -------------------------------------------------------------------
    async def _stream(self, feed: EventFeed) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        try:
            while True:
                last = self.sse.last_write if self.sse is not None else started
                burst = await feed.take(BURST_MAX, last + self.keepalive_s)
                if not burst:  # silence for keepalive_s
                    await self._open()  # nothing decisive yet: commit to 200 so keep-alives can flow
                    await self._flush()
                    await self.sse.keepalive()
                    continue
                # A burst of upstream chunks costs one write, not one per chunk.
                for queued in burst:
                    fin = await self._observe(queued)
                    if fin is not None:
                        return await self._stream_end(fin)
                await self._flush()
        except ClientGone:
            return await self._client_left("streaming")

    async def _open(self) -> None:
        """Commit to a 200 stream (headers sent); its first chunk, the role, waits for the next write."""
        if self.sse is None:
            self.sse = SseWriter(self.request, self.headers)
            await self.sse.start()
            self.frames.append(self.answer.role())

    async def _flush(self) -> None:
        if self.frames:
            frames, self.frames = self.frames, []
            await self.sse.send(*frames)

    async def _stream_end(self, fin: ev.RunFinished) -> web.StreamResponse:
        verdict = judge(fin, self.success_outcome)
        if not verdict.ok and self.sse is None:
            await self._finish(verdict, fin)
            return self._error_response(verdict)
        await self._open()
        if verdict.ok:
            if fin.refusal:
                self.frames.append(self.answer.refusal(fin.refusal))
            if fin.tool_calls:
                self.frames.append(self.answer.tool_calls(fin.tool_calls))
            self.frames.append(self.answer.finish(fin.finish_reason))
            if self.include_usage:
                self.frames.append(self.answer.usage(fin.usage))
        else:
            error = ApiError(verdict.status, verdict.error or "", code=verdict.code)
            self.frames.append(wire.encode(ErrorEnvelope(error=error.body)))
        await self._flush()
        # The books close before [DONE]: a client that has the whole answer finds it in the ledger.
        await self._finish(verdict, fin)
        await self.sse.finish(DONE)
        return self.sse.response

    # -- shared ---------------------------------------------------------------------
    async def _observe(self, event) -> ev.RunFinished | None:
        """Record one event and queue its SSE chunk (see ``_flush``); returns the RunFinished that ends the run."""
        if type(event) is ev.TextDelta:  # the hot path, one per upstream chunk: tested first
            self.text.append(event.text)
            if self.stream:
                if self.sse is None:
                    await self._open()
                self.frames.append(self.answer.content(event.text))
            return None
        if event is END or isinstance(event, Exception):
            error = f"{type(event).__name__}: {event}" if isinstance(event, Exception) else "run ended without a result"
            return ev.RunFinished(outcome=run_outcomes.ERROR, finish_reason="stop", error=error, error_status=500)
        if isinstance(event, ev.RunFinished):
            return event
        if isinstance(event, ev.TextDelta):
            self.text.append(event.text)
            if self.stream:
                await self._open()
                self.frames.append(self.answer.content(event.text))
        elif isinstance(event, ev.ReasoningDelta):
            self.reasoning.append(event.text)
            if self.stream:
                await self._open()
                self.frames.append(self.answer.reasoning(event.text))
        elif isinstance(event, ev.AnswerChecked):
            await self.rt.event("answer_checked", attempt=event.attempt, ok=event.ok, format=event.format,
                                **({"error": event.error} if event.error else {}))
        elif isinstance(event, ev.StepStarted):
            await self.rt.event("step_started", step=event.step, model=event.model)
        elif isinstance(event, ev.ToolStarted):
            await self.rt.event("tool_started", tool=event.name, call_id=event.call_id)
        elif isinstance(event, ev.ToolFinished):
            await self.rt.event("tool_finished", tool=event.name, call_id=event.call_id, ok=event.ok)
        elif isinstance(event, ev.PermissionRequested):
            await self.rt.event("permission_requested", tool=event.tool, tool_class=event.tool_class,
                                permission_id=event.permission_id, timeout_s=event.timeout_s)
            if self.stream:
                await self._open()
                self.frames.append(self.answer.reasoning(
                    f"waiting up to {event.timeout_s:g}s for permission to run {event.tool} "
                    f"(answer it in a BMO native surface such as the TUI)…\n"))
        elif isinstance(event, ev.PermissionDecided):
            await self.rt.event("permission_decided", tool=event.tool, decision=event.decision,
                                decided_by=event.decided_by)
        return None

    async def _client_left(self, during: str) -> web.StreamResponse:
        await self.rt.event("client_disconnected", during=during)
        if self.cancel_on_disconnect:
            self.run.cancel("client disconnected")
            await self.rt.event("run_cancelled", run_id=self.run.id, reason="client disconnected")
            try:
                async with asyncio.timeout(CANCEL_WAIT_S):
                    await self.run.wait()
            except TimeoutError:
                await self.rt.event("run_cancel_slow", run_id=self.run.id)
        await self.rt.finish(outcomes.CANCELLED, CLIENT_CLOSED, error=f"client disconnected while {during}",
                             **self.finish_detail)
        if self.sse is not None:
            return self.sse.response
        return web.Response(status=CLIENT_CLOSED, headers=self.headers)

    async def _finish(self, verdict: Verdict, fin: ev.RunFinished) -> None:
        detail = {**self.finish_detail, "run_outcome": fin.outcome, "finish_reason": fin.finish_reason,
                  "usage": {"prompt_tokens": fin.usage.prompt_tokens, "completion_tokens": fin.usage.completion_tokens,
                            "total_tokens": fin.usage.total_tokens}}
        if fin.tool_calls:
            detail["client_tool_calls"] = [c.function.name for c in fin.tool_calls]
        # The ledger and the record get the failure's full text; the client got the sanitized one.
        error = (getattr(self.run, "error_detail", None) or verdict.error) if verdict.error else None
        await self.rt.finish(verdict.outcome, verdict.status, error=error, **detail)

    def _error_response(self, verdict: Verdict) -> web.Response:
        response = ApiError(verdict.status, verdict.error or "", code=verdict.code).response()
        response.headers.update(self.headers)
        return response


async def deliver_text(request: web.Request, rt: CompatRequest, text: str, usage, *, stream: bool,
                       include_usage: bool, model: str, headers: dict[str, str], outcome: str,
                       finish_detail: dict | None = None) -> web.StreamResponse:
    """An answer BMO already has in full (a clarification question, a background task's reply)."""
    answer = Answer(rt.request_id, model)
    detail = dict(finish_detail or {})
    if not stream:
        body = answer.completion(text, "stop", usage)
        await rt.finish(outcome, 200, **detail)
        return web.Response(body=body, content_type="application/json", headers=headers)
    sse = SseWriter(request, headers)
    try:
        await sse.start()
        frames = [answer.role(), *([answer.content(text)] if text else []), answer.finish("stop")]
        if include_usage:
            frames.append(answer.usage(usage))
        await sse.send(*frames)
        await rt.finish(outcome, 200, **detail)  # before [DONE], as for runs
        await sse.finish(DONE)
    except ClientGone:
        await rt.event("client_disconnected", during="streaming")
        await rt.finish(outcomes.CANCELLED, CLIENT_CLOSED, error="client disconnected while streaming", **detail)
    return sse.response
