"""The agent loop for one run: model step, tool calls, results, next step, until an answer.

The loop also keeps the run honest: it stops repeated identical tool calls (loop
detection), continues answers cut off by ``finish_reason: "length"`` (length recovery),
asks once more when the model goes quiet after tools (post-tool recovery), and leaves the
session history valid for the next request whatever happens (every tool call answered).
A step's model call runs in :mod:`bmo.agent.model_step`, its tool calls in
:mod:`bmo.agent.tool_calls`; whatever else the loop needs comes from the run's
:class:`~bmo.agent.services.RunServices`, never from the coordinator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import traceback
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec

from bmo.agent import run_outcomes
from bmo.agent.context import ContextFitter
from bmo.agent.summaries import SummaryStore
from bmo.agent.errors import AgentError
from bmo.agent.events import AnswerChecked, PermissionRequested, ReasoningDelta, RunFinished, TextDelta
from bmo.agent.messages import ChatMessage, ToolCall
from bmo.agent.model_step import ModelSteps
from bmo.agent.providers.base import ModelTurn
from bmo.agent.tool_calls import ToolCallRunner, call_signature, short_arguments
from bmo.store import StoreError

if TYPE_CHECKING:
    from bmo.agent.answer_format import AnswerFormat
    from bmo.agent.run import Run
    from bmo.agent.services import RunServices
    from bmo.agent.session import Session

INTERRUPTED_RESULT = "No result: this tool call was interrupted before it finished."


def model_messages(system_prompt: str, history: list[ChatMessage]) -> list[ChatMessage]:
    """The system prompt, then the history with every tool call answered and continued answers joined.

    Upstreams reject an assistant ``tool_calls`` message not followed by a result for each
    call; a cancelled run or a client that never sent its results would leave one. A continued
    answer ("Continue Response") is stored as a second assistant message: the model gets one,
    as the client shows it, since strict chat templates refuse two assistant turns in a row.
    """
    out = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    waiting: list[str] = []
    for message in history:
        if waiting and message.role != "tool":
            out.extend(ChatMessage(role="tool", tool_call_id=cid, content=INTERRUPTED_RESULT) for cid in waiting)
            waiting = []
        if out and _plain_answer(message) and _plain_answer(out[-1]):
            out[-1] = ChatMessage(role="assistant", content=out[-1].content + message.content)
            continue
        out.append(message)
        if message.role == "assistant" and message.tool_calls:
            waiting = [c.id for c in message.tool_calls]
        elif message.role == "tool" and message.tool_call_id in waiting:
            waiting.remove(message.tool_call_id)
    out.extend(ChatMessage(role="tool", tool_call_id=cid, content=INTERRUPTED_RESULT) for cid in waiting)
    return out


def _plain_answer(message: ChatMessage) -> bool:
    return message.role == "assistant" and not message.tool_calls and isinstance(message.content, str)


class AgentLoop:
    """Drives one run to its RunFinished."""

    def __init__(
        self, services: RunServices, run: Run, session: Session, *, client_tools: list[dict] | None,
        sampling: dict | None, depth: int = 0, unwritten_run_row: dict | None = None,
        answer_format: AnswerFormat | None = None, tool_choice: object = None,
        history: list[ChatMessage] | None = None,
    ):
        self.services = services
        self.start_history = history  # read by the caller already: None reads it from the session
        self.run = run
        self.session = session
        self.depth = depth
        self.unwritten_run_row = unwritten_run_row  # a run on an in-memory session is written once, at its end
        self.history: list[ChatMessage] = []
        self.text: list[str] = []
        self.persisted_chars = 0  # of self.text, how much is in persisted assistant messages
        self.answer_format = answer_format
        self.tool_choice = tool_choice  # the first step's only: later steps are "auto"
        self.model = ModelSteps(services, run, session, sampling=sampling, on_text=self.text.append,
                                hold_text=answer_format is not None)
        if run.policy.announce_waits:
            services = dataclasses.replace(services, emit=self._emit_announcing_waits)
        self.tool_calls = ToolCallRunner(services, run, session, client_tools=client_tools, depth=depth)
        self.said_pending = ""  # BMO's own lines said since the last persisted answer text, stored with the next
        self.seen: Counter = Counter()  # identical-call streaks across consecutive steps
        summaries = None if session.in_memory else SummaryStore(services.store.db, session.id, run.id)
        self.context = ContextFitter(services.context, run.model, services.record, run.id, summaries)

    def emit(self, event: Any) -> None:
        self.services.emit(event)

    def say(self, text: str) -> None:
        """Answer text BMO itself adds (explanations), streamed like model text.

        Under an answer format the answer must be the checked JSON alone, so the explanation is
        progress (a reasoning delta) and the run ends without an answer text.
        """
        if self.answer_format is not None:
            self.emit(ReasoningDelta(text=text.lstrip("\n")))
            return
        self.text.append(text)
        self.emit(TextDelta(text=text))

    # -- the run -------------------------------------------------------------------
    async def drive(self) -> RunFinished:
        """Run the loop; always ends with a RunFinished (emitted and persisted)."""
        started = time.monotonic()
        try:
            result = await self._loop()
        except asyncio.CancelledError:
            reason = self.run.cancel_reason or "cancelled"
            result = RunFinished(outcome=run_outcomes.CANCELLED, finish_reason="stop", text="".join(self.text),
                                 usage=self.model.usage, error=f"run cancelled: {reason}")
            await asyncio.shield(self._close_dangling_calls())
            await asyncio.shield(self._keep_partial_answer())
        except AgentError as exc:
            self.run.error_detail = exc.detail  # the full story, for the store and records; clients get str(exc)
            result = self._error(str(exc), exc.status, exc.code)
        except StoreError as exc:  # the history cannot be saved (full disk: 507): the run ends, said plainly
            result = self._error(f"the session's history could not be saved: {exc}", exc.status)
        except Exception as exc:  # the run must end with an event, never vanish
            self.services.record("agent.run.internal_error", "error", run_id=self.run.id, session_id=self.session.id,
                                 error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
            result = self._error(f"internal error in the agent loop: {type(exc).__name__}: {exc}", 500)
        await asyncio.shield(self._finish(result, time.monotonic() - started))
        return result

    def _error(self, message: str, status: int, code: str | None = None) -> RunFinished:
        return RunFinished(outcome=run_outcomes.ERROR, finish_reason="stop", text="".join(self.text),
                           usage=self.model.usage, error=message, error_status=status, error_code=code)

    def _done(self, outcome: str, finish_reason: str = "stop", *, error: str | None = None,
              tool_calls: list[ToolCall] | None = None, refusal: str | None = None) -> RunFinished:
        return RunFinished(outcome=outcome, finish_reason=finish_reason, text="".join(self.text),
                           tool_calls=list(tool_calls or []), usage=self.model.usage, error=error, refusal=refusal)

    async def _finish(self, result: RunFinished, elapsed: float) -> None:
        store = self.services.store
        end = {
            "finished_at": time.time(), "outcome": result.outcome, "finish_reason": result.finish_reason,
            "steps": self.model.steps, "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens, "error": self.run.error_detail or result.error,
            "error_status": result.error_status, "cancel_reason": self.run.cancel_reason,
        }
        try:
            if self.unwritten_run_row is not None:
                await store.record_finished_run({**self.unwritten_run_row, **end})
            else:
                end_lease = self.services.end_lease
                await store.finish_run(self.run.id, end, also=end_lease() if end_lease is not None else None)
            if result.outcome == run_outcomes.CANCELLED:
                await store.audit("run.cancelled", actor=self.run.requester, session_id=self.session.id,
                                  run_id=self.run.id, reason=self.run.cancel_reason or "cancelled")
        except Exception as exc:  # a store failure must not keep the run from ending
            self.services.record("agent.persist_failed", "error", run_id=self.run.id,
                                 error=f"{type(exc).__name__}: {exc}")
        level = "error" if result.outcome == run_outcomes.ERROR else ("warn" if result.outcome != run_outcomes.FINAL_ANSWER and
                                                                   result.outcome != run_outcomes.CLIENT_TOOL_CALLS else "info")
        if result.outcome == run_outcomes.CANCELLED:
            self.services.record("agent.run.cancelled", "warn", run_id=self.run.id, session_id=self.session.id,
                                 reason=self.run.cancel_reason or "cancelled")
        self.services.record(
            "agent.run.finished", level, run_id=self.run.id, session_id=self.session.id, model=self.run.model,
            origin=self.run.policy.origin, outcome=result.outcome, finish_reason=result.finish_reason,
            steps=self.model.steps, prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            elapsed_ms=round(elapsed * 1000, 1), error=self.run.error_detail or result.error,
            error_status=result.error_status,
            requester=self.run.requester, depth=self.depth,
        )
        self.emit(result)

    def _emit_announcing_waits(self, event: Any) -> None:
        self.emit(event)
        if isinstance(event, PermissionRequested):
            where = (f"the TUI (bmo tui --session {self.session.id}) or POST /v1/sessions/{self.session.id}/"
                     f"permissions/{event.permission_id}")
            line = (f"\n\n> BMO is waiting up to {event.timeout_s:g} s for permission to run {event.tool} "
                    f"({event.tool_class}). Answer it in {where}; without an answer it is denied.\n\n")
            self.say(line)
            self.said_pending += line

    async def _persist(self, messages: list[ChatMessage]) -> None:
        if self.said_pending:  # what the client saw BMO say goes with the next answer text, so transcripts match
            for i, m in enumerate(messages):
                if m.role == "assistant" and not m.tool_calls:
                    messages = [*messages[:i], msgspec.structs.replace(m, content=self.said_pending + (m.content or "")),
                                *messages[i + 1:]]
                    self.said_pending = ""
                    break
        await self.session.append(messages, self.run.id)
        self.history.extend(messages)
        self.persisted_chars += sum(len(m.content or "") for m in messages if m.role == "assistant")

    async def _keep_partial_answer(self) -> None:
        """After a stop, the answer text the client already saw stays in the history, marked interrupted."""
        partial = "".join(self.text)[self.persisted_chars:]
        if not partial:
            return
        try:
            message = ChatMessage(role="assistant", content=partial)
            await self.session.append([message], self.run.id, interrupted=True)
            self.history.append(message)
        except Exception as exc:
            self.services.record("agent.persist_failed", "error", run_id=self.run.id,
                                 error=f"{type(exc).__name__}: {exc}")

    async def _close_dangling_calls(self) -> None:
        """After a cancel, answer tool calls that never got a result, so the history stays valid."""
        try:
            answered = {m.tool_call_id for m in self.history if m.role == "tool"}
            last = next((m for m in reversed(self.history) if m.role == "assistant"), None)
            if last is None or not last.tool_calls:
                return
            missing = [ChatMessage(role="tool", tool_call_id=c.id, content="Cancelled before this tool call finished.")
                       for c in last.tool_calls if c.id not in answered and not self.tool_calls.is_client_call(c)]
            if missing:
                await self._persist(missing)
        except Exception as exc:
            self.services.record("agent.persist_failed", "error", run_id=self.run.id,
                                 error=f"{type(exc).__name__}: {exc}")

    async def _loop(self) -> RunFinished:
        options = self.services.options
        self.history = self.start_history if self.start_history is not None else await self.session.messages()
        max_steps = self.run.policy.max_steps or options.max_steps
        offered = self.tool_calls.model_tools()
        tools_ran = False
        recovery_used = False
        # The recovery prompt, or the continue prompt when the history ends in an answer: sent once, never persisted.
        nudge: list[ChatMessage] = self._continuation()
        system = options.system_prompt
        if self.answer_format is not None:  # said on every step, persisted nowhere
            system = (system + "\n\n" if system else "") + self.answer_format.instructions()
        for _ in range(max_steps):
            turn = await self._model_turn(model_messages(system, self.history) + nudge, offered)
            nudge = []
            if turn.tool_calls:
                await self._persist([ChatMessage(role="assistant", content=turn.text or None, tool_calls=turn.tool_calls)])
                looping = self._loop_check(turn.tool_calls)
                if looping is not None:
                    await self._persist([ChatMessage(role="tool", tool_call_id=c.id, content="Not run: loop detected.")
                                         for c in turn.tool_calls if not self.tool_calls.is_client_call(c)])
                    return self._done(run_outcomes.LOOP_DETECTED, error=looping)
                ours = [c for c in turn.tool_calls if not self.tool_calls.is_client_call(c)]
                theirs = [c for c in turn.tool_calls if self.tool_calls.is_client_call(c)]
                if ours:
                    await self._persist(await self.tool_calls.execute(ours))
                    tools_ran = True
                    if self.tool_calls.ended is not None:  # a tool said the run cannot go on (ToolEndedRun)
                        return self._done(self.tool_calls.ended.outcome, error=str(self.tool_calls.ended))
                if theirs:
                    return self._done(run_outcomes.CLIENT_TOOL_CALLS, "tool_calls", tool_calls=theirs)
                continue
            if not turn.text.strip() and tools_ran:
                if not recovery_used:
                    recovery_used = True
                    nudge = [ChatMessage(role="user", content=options.recovery_prompt)]
                    self.services.record("agent.recovery.prompted", "warn", run_id=self.run.id,
                                         session_id=self.session.id)
                    continue
                message = ("The model gave no answer after running tools, even when asked again. "
                           "Try rephrasing the request or another model.")
                self.say(("\n\n" if self.text else "") + message)
                return self._done(run_outcomes.RECOVERY_FAILED, error=message)
            if turn.refusal:
                await self._persist([ChatMessage(role="assistant", content=turn.refusal)])
                self.text = []
                return self._done(run_outcomes.FINAL_ANSWER, turn.finish_reason, refusal=turn.refusal)
            if self.answer_format is not None:
                return await self._formatted_answer(turn, model_messages(system, self.history))
            await self._persist([ChatMessage(role="assistant", content=turn.text)])
            return self._done(run_outcomes.FINAL_ANSWER, turn.finish_reason)
        message = (f"Stopped after {max_steps} steps without a final answer ([agent] max_steps). "
                   "Ask to continue, or raise the limit.")
        self.say(("\n\n" if self.text else "") + message)
        return self._done(run_outcomes.MAX_STEPS, error=message)

    def _continuation(self) -> list[ChatMessage]:
        """A history ending in an assistant answer is a "continue": asked like length recovery asks."""
        last = self.history[-1] if self.history else None
        if last is None or last.role != "assistant" or last.tool_calls or not (last.content or "").strip():
            return []
        self.services.record("agent.continue_answer", "info", run_id=self.run.id, session_id=self.session.id)
        return [ChatMessage(role="user", content=self.services.length_recovery.continue_prompt)]

    # -- the answer format ---------------------------------------------------------
    async def _formatted_answer(self, turn: ModelTurn, messages: list[ChatMessage]) -> RunFinished:
        """Check the final text against the answer format; one repair step; the checked JSON is the answer."""
        fmt = self.answer_format
        assert fmt is not None
        text = fmt.extract(turn.text)
        # Off the event loop: jsonschema is pure Python, a few ms for a modest answer and more for a large one.
        error = await asyncio.to_thread(fmt.check, text)
        self.emit(AnswerChecked(attempt=1, ok=error is None, format=fmt.describe(), error=error))
        if error is not None:
            repair = messages + [ChatMessage(role="assistant", content=turn.text),
                                 ChatMessage(role="user", content=fmt.repair_prompt(error))]
            turn = await self.model.call(repair, [], "format_repair", response_format=fmt.upstream())
            if turn.refusal:
                await self._persist([ChatMessage(role="assistant", content=turn.refusal)])
                return self._done(run_outcomes.FINAL_ANSWER, turn.finish_reason, refusal=turn.refusal)
            text = fmt.extract(turn.text)
            error = await asyncio.to_thread(fmt.check, text)
            self.emit(AnswerChecked(attempt=2, ok=error is None, format=fmt.describe(), error=error))
        if error is not None:
            # Nothing persisted: the failed answer is not part of the conversation the client sees.
            self.services.record("agent.answer_format.failed", "warn", run_id=self.run.id, session_id=self.session.id,
                                 error=error, **fmt.describe())
            return RunFinished(outcome=run_outcomes.INVALID_OUTPUT, finish_reason="stop", usage=self.model.usage,
                               error=f"The model's answer does not meet the requested format "
                                     f"({fmt.describe()['type']}), even after one repair attempt: {error}",
                               error_status=502)
        await self._persist([ChatMessage(role="assistant", content=text)])
        self.text = [text]
        self.emit(TextDelta(text=text))
        return self._done(run_outcomes.FINAL_ANSWER, turn.finish_reason)

    async def _summarise(self, messages: list[ChatMessage]) -> str:
        """The compaction call: its text never reaches the client (held like a formatted answer's)."""
        held, self.model.hold_text = self.model.hold_text, True
        try:
            return (await self.model.call(messages, [], "compaction")).text.strip()
        finally:
            self.model.hold_text = held

    # -- loop detection ------------------------------------------------------------
    def _loop_check(self, calls: list[ToolCall]) -> str | None:
        """An explanation when a call repeats past [agent.loop_detection], else None."""
        opts = self.services.loop_detection
        if not opts.enabled:
            return None
        # A streak only lives while every step repeats the call: edit-then-retest cycles are not loops.
        step = Counter(call_signature(c) for c in calls)
        self.seen = Counter({sig: self.seen.get(sig, 0) + n for sig, n in step.items()})
        for call in calls:
            count = self.seen[call_signature(call)]
            if count > opts.max_identical_calls:
                message = (f"Stopped: the model called {call.function.name}({short_arguments(call.function.arguments)}) "
                           f"with the same arguments {count} times in a row, more than the limit of "
                           f"{opts.max_identical_calls} ([agent.loop_detection] max_identical_calls).")
                self.say(("\n\n" if self.text else "") + message)
                self.services.record("agent.loop_detected", "warn", run_id=self.run.id, session_id=self.session.id,
                                     tool=call.function.name, count=count)
                return message
        return None

    # -- model calls ---------------------------------------------------------------
    async def _model_turn(self, messages: list[ChatMessage], tools: list[dict]) -> ModelTurn:
        """One model answer; a ``length`` stop is continued and stitched into one text."""
        # A step without tools can ask the upstream for the format itself (see bmo.agent.answer_format).
        response_format = self.answer_format.upstream() if self.answer_format is not None and not tools else None
        tool_choice, self.tool_choice = self.tool_choice, None
        messages = await self.context.fit(messages, tools, self._summarise)
        turn = await self.model.call(messages, tools, "model", tool_choice=tool_choice if tools else None,
                                     response_format=response_format)
        self.context.learn(messages, tools, turn.usage.prompt_tokens)
        opts = self.services.length_recovery
        if turn.finish_reason != "length" or turn.tool_calls or not opts.enabled:
            return turn
        texts = [turn.text]
        usage = turn.usage
        continuations = 0
        while turn.finish_reason == "length" and not turn.tool_calls and continuations < opts.max_continuations:
            continuations += 1
            follow = messages + [ChatMessage(role="assistant", content="".join(texts)),
                                 ChatMessage(role="user", content=opts.continue_prompt)]
            turn = await self.model.call(follow, tools, "length_recovery", response_format=response_format)
            texts.append(turn.text)
            usage = usage + turn.usage
        self.services.record("agent.length_recovery", "info", run_id=self.run.id, continuations=continuations,
                             finish_reason=turn.finish_reason)
        return ModelTurn(text="".join(texts), reasoning=turn.reasoning, tool_calls=turn.tool_calls,
                         finish_reason=turn.finish_reason, usage=usage, refusal=turn.refusal)
