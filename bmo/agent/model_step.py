"""A run's model calls, each one a recorded step: the span, the streamed events, the step row."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bmo.agent.errors import error_detail
from bmo.agent.events import StepStarted, TextDelta
from bmo.agent.messages import ChatMessage, Usage
from bmo.agent.providers.base import ModelTurn
from bmo.agent.telemetry import chat_span, record_usage

if TYPE_CHECKING:
    from bmo.agent.run import Run
    from bmo.agent.services import RunServices
    from bmo.agent.session import Session


class ModelSteps:
    """Makes one run's model calls, counts them and adds up their usage."""

    def __init__(self, services: RunServices, run: Run, session: Session, *, sampling: dict | None,
                 on_text: Callable[[str], None], hold_text: bool = False):
        self.services = services
        self.run = run
        self.session = session
        self.sampling = dict(sampling or {})
        self.on_text = on_text  # answer text, as it streams
        self.hold_text = hold_text  # an answer format is set: text waits for its check, the loop emits it
        self.steps = 0  # model calls made
        self.usage = Usage()

    async def call(self, messages: list[ChatMessage], tools: list[dict], kind: str, *, tool_choice: object = None,
                   response_format: dict | None = None) -> ModelTurn:
        """One streamed model call: its events go to the run as they come; its step row is written when it ends."""
        provider, upstream_model = self.services.resolve_model(self.run.model)
        emit = self.services.emit
        self.steps += 1
        step = self.steps
        started_at = time.time()
        turn: ModelTurn | None = None
        started_event = False
        error: str | None = None
        try:
            with chat_span(self.services.tracer, provider=provider.name, model=upstream_model, run_id=self.run.id,
                           session_id=self.session.id) as span:
                stream = provider.stream(upstream_model, messages, tools=tools or None, sampling=self.sampling,
                                         **_optional(tool_choice=tool_choice, response_format=response_format))
                # aclosing: a cancel closes the upstream connection now, not whenever the generator is collected.
                async with contextlib.aclosing(stream) as items:
                    async for item in items:
                        if not started_event:
                            # Only now: an upstream that fails before its first byte leaves RunFinished first.
                            emit(StepStarted(step=step, model=self.run.model))
                            started_event = True
                        if isinstance(item, ModelTurn):
                            turn = item
                        elif isinstance(item, TextDelta):
                            if not self.hold_text:
                                self.on_text(item.text)
                                emit(item)
                        else:
                            emit(item)
                assert turn is not None
                record_usage(span, input_tokens=turn.usage.prompt_tokens, output_tokens=turn.usage.completion_tokens,
                             finish_reason=turn.finish_reason)
        except BaseException as exc:
            error = error_detail(exc)
            raise
        finally:
            usage = turn.usage if turn is not None else Usage()
            self.usage = self.usage + usage
            # One row per step, written when it ends and not waited for: no store hop before or after the model call.
            self._write_soon(self.services.store.record_step_soon({
                "run_id": self.run.id, "step": step, "kind": kind, "model": self.run.model, "started_at": started_at,
                "finished_at": time.time(), "finish_reason": turn.finish_reason if turn else None,
                "tool_calls": len(turn.tool_calls) if turn else 0, "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens, "error": error,
            }), "run_step")
        return turn

    def _write_soon(self, future: asyncio.Future, what: str) -> None:
        """Let a write nobody waits for report its failure as a trace record."""
        def reported(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                exc = fut.exception()
                self.services.record("agent.persist_failed", "error", run_id=self.run.id, write=what,
                                     error=f"{type(exc).__name__}: {exc}")

        future.add_done_callback(reported)


def _optional(**kwargs) -> dict:
    """Only the arguments that are set, so a provider without them keeps working."""
    return {k: v for k, v in kwargs.items() if v is not None}
