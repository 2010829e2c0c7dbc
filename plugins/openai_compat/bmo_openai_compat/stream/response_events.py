"""A run delivered as a Responses API answer: the response object and its typed SSE events.

:class:`ResponseAnswer` grows the response's output items as the run speaks (answer text into
``message`` items, BMO's own tool progress into ``reasoning`` summaries, the client's tool calls
into ``function_call`` items) and frames each change as the numbered events the official SDKs
parse. :class:`ResponseDelivery` is chat's :class:`RunDelivery` (same pump, keep-alives, verdicts,
cancel-on-disconnect, ledger bookkeeping) with those events in place of chat chunks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from bmo.agent import events as ev
from bmo.streaming.disconnect import ClientGone
from bmo.streaming.sse_writer import SseWriter, event_frame
from bmo_openai_compat import responses_events_wire as ew
from bmo_openai_compat import responses_wire as rw
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.stream.delivery import CLIENT_CLOSED, RunDelivery, Verdict, judge

OnFinal = Callable[[rw.ResponseObject], Awaitable[None]]
# The SDK's ResponseError codes; a failed run maps onto the closest.
FAILED_CODES = {429: "rate_limit_exceeded"}


def item_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"  # 24 random hex digits, without a UUID object


def response_usage(usage) -> rw.ResponseUsage:
    if usage is None:
        return rw.ResponseUsage(input_tokens=0, output_tokens=0, total_tokens=0)
    return rw.ResponseUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                            total_tokens=usage.total_tokens)


class ResponseAnswer:
    """One response: its output items so far, and the SSE bytes that announce each change."""

    def __init__(self, template: rw.ResponseObject):
        self.template = template
        self.seq = -1
        self.items: list[rw.OutputItem] = []
        self.open: rw.OutputMessage | rw.ReasoningItem | None = None  # the item receiving deltas
        self.parts: list[str] = []
        self.final: rw.ResponseObject | None = None

    @property
    def id(self) -> str:
        return self.template.id

    def snapshot(self, status: str, **fields) -> rw.ResponseObject:
        return msgspec.structs.replace(self.template, status=status, output=list(self.items), **fields)

    # -- what RunDelivery calls (the same names as chat's Answer) -----------------------
    def role(self) -> bytes:
        """The stream's opening: created, then in progress."""
        return self._sse(ew.ResponseCreated(response=self.snapshot("in_progress")),
                         ew.ResponseInProgress(response=self.snapshot("in_progress")))

    def content(self, text: str) -> bytes:
        events = [] if isinstance(self.open, rw.OutputMessage) else [*self._close(), *self._open_message()]
        self.parts.append(text)
        events.append(ew.OutputTextDelta(item_id=self.open.id, output_index=len(self.items) - 1, delta=text))
        return self._sse(*events)

    def reasoning(self, text: str) -> bytes:
        events = [] if isinstance(self.open, rw.ReasoningItem) else [*self._close(), *self._open_reasoning()]
        self.parts.append(text)
        events.append(ew.SummaryTextDelta(item_id=self.open.id, output_index=len(self.items) - 1, delta=text))
        return self._sse(*events)

    def completion(self, text: str, finish_reason: str, usage, *, tool_calls=(), reasoning: str = "",
                   refusal: str | None = None) -> bytes:
        """The whole response at once (not streamed); a refusal is a ``refusal`` content part."""
        if reasoning:
            self.items.append(rw.ReasoningItem(id=item_id("rs"), summary=[rw.SummaryText(text=reasoning)]))
        if text or refusal or not tool_calls:
            parts: list = [rw.OutputText(text=text)] if text or not refusal else []
            if refusal:
                parts.append(rw.OutputRefusal(refusal=refusal))
            self.items.append(rw.OutputMessage(id=item_id("msg"), status="completed", content=parts))
        self.items.extend(self._function_call(c) for c in tool_calls)
        self.final = self._ended(finish_reason, usage)
        return rw.encode(self.final)

    # -- the stream's last events --------------------------------------------------------
    def finish(self, tool_calls, usage, finish_reason: str) -> bytes:
        events = self._close()
        for call in tool_calls:
            item = self._function_call(call)
            index = len(self.items)
            self.items.append(item)
            events += [
                ew.OutputItemAdded(output_index=index, item=msgspec.structs.replace(item, arguments="",
                                                                                   status="in_progress")),
                ew.ArgumentsDelta(item_id=item.id, output_index=index, delta=item.arguments),
                ew.ArgumentsDone(item_id=item.id, output_index=index, name=item.name, arguments=item.arguments),
                ew.OutputItemDone(output_index=index, item=item),
            ]
        self.final = self._ended(finish_reason, usage)
        done = ew.ResponseIncomplete if self.final.status == "incomplete" else ew.ResponseCompleted
        events.append(done(response=self.final))
        return self._sse(*events)

    def fail(self, verdict: Verdict) -> bytes:
        """A run that failed after the stream opened: an ``error`` event, then ``response.failed``."""
        events = self._close()
        self.final = self.failed(verdict)
        events += [ew.ErrorEvent(code=verdict.code or self.final.error.code, message=verdict.error or ""),
                   ew.ResponseFailed(response=self.final)]
        return self._sse(*events)

    def failed(self, verdict: Verdict) -> rw.ResponseObject:
        status = "cancelled" if verdict.outcome == outcomes.CANCELLED else "failed"
        code = FAILED_CODES.get(verdict.status, "server_error")
        return self.snapshot(status, error=rw.ResponseErrorOut(code=code, message=verdict.error or status))

    # -- internals ----------------------------------------------------------------------
    def _ended(self, finish_reason: str, usage) -> rw.ResponseObject:
        if finish_reason == "length":
            return self.snapshot("incomplete", usage=response_usage(usage),
                                 incomplete_details={"reason": "max_output_tokens"})
        return self.snapshot("completed", usage=response_usage(usage))

    @staticmethod
    def _function_call(call) -> rw.FunctionCallItem:
        return rw.FunctionCallItem(id=item_id("fc"), call_id=call.id, name=call.function.name,
                                   arguments=call.function.arguments or "")

    def _open_message(self) -> list[ew.Event]:
        self.open, self.parts = rw.OutputMessage(id=item_id("msg"), status="in_progress", content=[]), []
        self.items.append(self.open)
        index = len(self.items) - 1
        return [ew.OutputItemAdded(output_index=index, item=self.open),
                ew.ContentPartAdded(item_id=self.open.id, output_index=index, part=rw.OutputText(text=""))]

    def _open_reasoning(self) -> list[ew.Event]:
        self.open, self.parts = rw.ReasoningItem(id=item_id("rs"), summary=[], status="in_progress"), []
        self.items.append(self.open)
        index = len(self.items) - 1
        return [ew.OutputItemAdded(output_index=index, item=self.open),
                ew.SummaryPartAdded(item_id=self.open.id, output_index=index, part=rw.SummaryText(text=""))]

    def _close(self) -> list[ew.Event]:
        """Finish the item receiving deltas: its done events, and its final form in ``items``."""
        item, text = self.open, "".join(self.parts)
        if item is None:
            return []
        self.open, self.parts = None, []
        index = self.items.index(item)
        if isinstance(item, rw.OutputMessage):
            part = rw.OutputText(text=text)
            done = msgspec.structs.replace(item, status="completed", content=[part])
            events = [ew.OutputTextDone(item_id=item.id, output_index=index, text=text),
                      ew.ContentPartDone(item_id=item.id, output_index=index, part=part)]
        else:
            part = rw.SummaryText(text=text)
            done = msgspec.structs.replace(item, status="completed", summary=[part])
            events = [ew.SummaryTextDone(item_id=item.id, output_index=index, text=text),
                      ew.SummaryPartDone(item_id=item.id, output_index=index, part=part)]
        self.items[index] = done
        return [*events, ew.OutputItemDone(output_index=index, item=done)]

    def _sse(self, *events: ew.Event) -> bytes:
        out = []
        for event in events:
            self.seq += 1
            event.sequence_number = self.seq
            out.append(event_frame(ew.event_name(event), rw.encode(event)))
        return b"".join(out)


class ResponseDelivery(RunDelivery):
    """Chat's run delivery, speaking Responses events; ``on_final`` stores the response before the client sees it."""

    def __init__(self, request: web.Request, rt: CompatRequest, run, answer: ResponseAnswer, on_final: OnFinal,
                 **kwargs):
        super().__init__(request, rt, run, include_usage=False, model=answer.template.model, **kwargs)
        self.answer = answer
        self.on_final = on_final

    async def _flush(self) -> None:
        if self.frames:
            frames, self.frames = self.frames, []
            await self.sse.write(b"".join(frames))

    async def _stream_end(self, fin: ev.RunFinished) -> web.StreamResponse:
        verdict = judge(fin, self.success_outcome)
        if not verdict.ok and self.sse is None:
            await self._finish(verdict, fin)
            return self._error_response(verdict)
        await self._open()
        if verdict.ok:
            self.frames.append(self.answer.finish(fin.tool_calls, fin.usage, fin.finish_reason))
        else:
            self.frames.append(self.answer.fail(verdict))
        # Stored and booked before the last event: a client that has it can continue from it at once.
        await self._finish(verdict, fin)
        await self._flush()
        await self.sse.finish()  # no [DONE]: the Responses API ends with its completed event
        return self.sse.response

    async def _finish(self, verdict: Verdict, fin: ev.RunFinished) -> None:
        final = self.answer.final if verdict.ok and self.answer.final is not None else self.answer.failed(verdict)
        await self.on_final(final)
        await super()._finish(verdict, fin)

    async def _client_left(self, during: str) -> web.StreamResponse:
        response = await super()._client_left(during)
        await self.on_final(self.answer.snapshot("cancelled"))
        return response


async def deliver_response_text(request: web.Request, rt: CompatRequest, answer: ResponseAnswer, text: str, usage,
                                *, stream: bool, headers: dict[str, str], outcome: str, on_final: OnFinal,
                                finish_detail: dict | None = None) -> web.StreamResponse:
    """An answer BMO already has in full (the ambiguity router's question), as a response."""
    detail = dict(finish_detail or {})
    if not stream:
        body = answer.completion(text, "stop", usage)
        await on_final(answer.final)
        await rt.finish(outcome, 200, **detail)
        return web.Response(body=body, content_type="application/json", headers=headers)
    sse = SseWriter(request, headers)
    try:
        await sse.start()
        frames = answer.role() + answer.content(text) + answer.finish((), usage, "stop")
        await on_final(answer.final)
        await rt.finish(outcome, 200, **detail)
        await sse.finish(frames)
    except ClientGone:
        await rt.event("client_disconnected", during="streaming")
        await rt.finish(outcomes.CANCELLED, CLIENT_CLOSED, error="client disconnected while streaming", **detail)
    return sse.response


def new_template(response_id: str, model: str, **fields) -> rw.ResponseObject:
    return rw.ResponseObject(id=response_id, created_at=int(time.time()), status="in_progress", model=model, **fields)
