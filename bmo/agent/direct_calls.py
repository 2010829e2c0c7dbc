"""One direct model call, no loop, no tool, no session: the coordinator's ``complete`` and ``complete_prompt``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec

from bmo.agent.messages import ChatMessage, ToolCall, Usage
from bmo.agent.providers.base import ModelTurn
from bmo.agent.telemetry import chat_span, record_prompt, record_turn


class Completion(msgspec.Struct, kw_only=True):
    """The result of :meth:`Coordinator.complete`: one model answer, no tools run."""

    text: str = ""
    tool_calls: list[ToolCall] = []
    finish_reason: str = "stop"
    usage: Usage = msgspec.field(default_factory=Usage)


class DirectModelCalls:
    """The coordinator's direct model calls; it provides ``resolve_model`` and ``host`` (for the tracer)."""

    host: Any
    resolve_model: Callable[[str], tuple[Any, str]]

    async def complete(self, model: str, messages: list[ChatMessage], *, tools: list[dict] | None = None,
                       tool_choice: object = None, sampling: dict | None = None,
                       response_format: dict | None = None, purpose: str = "chat",
                       conversation_id: str | None = None, run_id: str | None = None) -> Completion:
        """One model call, no loop, no tool, no session; ``purpose`` names its span, the ids tie it to a session."""
        provider, upstream = self.resolve_model(model)
        turn: ModelTurn | None = None
        extra = {"response_format": response_format} if response_format is not None else {}
        with chat_span(self.host.tracer, provider=provider.name, model=upstream, purpose=purpose,
                       session_id=conversation_id, run_id=run_id) as span:
            stream = provider.stream(upstream, messages, tools=tools, tool_choice=tool_choice, sampling=sampling,
                                     **extra)
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    if isinstance(item, ModelTurn):
                        turn = item
            assert turn is not None
            record_turn(span, self.host.tracer, turn, messages)
        return Completion(text=turn.text, tool_calls=turn.tool_calls, finish_reason=turn.finish_reason, usage=turn.usage)

    async def complete_prompt(self, model: str, prompt: str, *, suffix: str | None = None,
                              sampling: dict | None = None) -> Completion | None:
        """One legacy text completion on the provider's own endpoint; None when it has none (use ``complete``)."""
        provider, upstream = self.resolve_model(model)
        complete_text = getattr(provider, "complete_text", None)
        if complete_text is None:
            return None
        with chat_span(self.host.tracer, provider=provider.name, model=upstream) as span:
            turn = await complete_text(upstream, prompt, suffix=suffix, sampling=sampling)
            if turn is None:
                return None
            record_prompt(span, self.host.tracer, prompt, turn)
        return Completion(text=turn.text, finish_reason=turn.finish_reason, usage=turn.usage)
