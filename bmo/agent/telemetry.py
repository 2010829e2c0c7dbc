"""OpenTelemetry spans for model and tool calls, with GenAI semantic-convention attributes.

Spans start in the current context, so a route's request span is their parent (the run's
task copies the context of whoever started it). A failed call's span ends with ERROR status
and a short ``error.type`` (see :func:`error_type`); message content is added only when
content capture is on (:mod:`bmo.tracing.content`).
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bmo.agent.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from bmo.tracing.content import capture_for

_NOOP = trace.NoOpTracer()


def _or_noop(tracer: Any):
    return tracer or _NOOP


def error_type(exc: BaseException) -> str:
    """A low-cardinality ``error.type``: timeout, unreachable, cancelled, an HTTP status, or the exception class."""
    if isinstance(exc, (UpstreamTimeout, TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, UpstreamUnreachable):
        return "unreachable"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, UpstreamError):
        return str(exc.upstream_status) if exc.upstream_status != 502 else "upstream_error"
    return type(exc).__qualname__


def mark_failed(span: Any, kind: str, message: str) -> None:
    """ERROR status and ``error.type`` on a call that failed without raising (a refused or failed tool call)."""
    span.set_status(Status(StatusCode.ERROR, message[:300]))
    span.set_attribute("error.type", kind)


@contextmanager
def chat_span(tracer: Any, *, provider: str, model: str, run_id: str | None = None, session_id: str | None = None,
              purpose: str = "chat"):
    """``chat {model}``: one model call (``model`` as the upstream knows it). Set usage with :func:`record_usage`.

    ``purpose`` other than "chat" (e.g. "triage") names the span apart: ``triage {model}``.
    ``tracer`` None: the span is a no-op.
    """
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider,
             "gen_ai.system": provider, "bmo.model": f"{provider}/{model}", "bmo.call.purpose": purpose}
    if run_id:
        attrs["bmo.run_id"] = run_id
    if session_id:
        attrs["gen_ai.conversation.id"] = session_id
        attrs["session.id"] = session_id  # OpenInference: Phoenix's session view groups on it
    with _or_noop(tracer).start_as_current_span(f"{purpose} {model}", kind=SpanKind.CLIENT, attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
            span.set_attribute("error.type", error_type(exc))
            raise


def record_usage(span: Any, *, input_tokens: int, output_tokens: int, finish_reason: str, response_model: str = "") -> None:
    attributes = {"gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": output_tokens,
                  "gen_ai.response.finish_reasons": [finish_reason]}
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    span.set_attributes(attributes)  # one call (one lock) for the four


def record_turn(span: Any, tracer: Any, turn: Any, messages: list | None = None) -> None:
    """Usage, response model and (when capture is on) the input messages and output of one finished model turn."""
    record_usage(span, input_tokens=turn.usage.prompt_tokens, output_tokens=turn.usage.completion_tokens,
                 finish_reason=turn.finish_reason, response_model=getattr(turn, "response_model", ""))
    capture = capture_for(tracer)
    if capture.enabled:
        capture.model_content(span, messages or [], turn)


def record_prompt(span: Any, tracer: Any, prompt: str, turn: Any) -> None:
    """A legacy text completion's usage and (capture on) its prompt and text."""
    record_usage(span, input_tokens=turn.usage.prompt_tokens, output_tokens=turn.usage.completion_tokens,
                 finish_reason=turn.finish_reason, response_model=getattr(turn, "response_model", ""))
    capture = capture_for(tracer)
    if capture.enabled:
        capture.prompt_content(span, prompt, turn)


def record_tool_content(span: Any, tracer: Any, arguments: str, result: str) -> None:
    """A tool call's arguments and result, when content capture is on."""
    capture = capture_for(tracer)
    if capture.enabled:
        capture.tool_content(span, arguments, result)


@contextmanager
def tool_span(tracer: Any, *, name: str, call_id: str, tool_class: str, run_id: str | None = None,
              session_id: str | None = None):
    """``execute_tool {name}``: one tool call. A raised exception ends it as ERROR with ``error.type``."""
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
             "gen_ai.tool.type": "function", "bmo.tool.class": tool_class}
    if run_id:
        attrs["bmo.run_id"] = run_id
    if session_id:
        attrs["gen_ai.conversation.id"] = session_id
        attrs["session.id"] = session_id
    with _or_noop(tracer).start_as_current_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            mark_failed(span, error_type(exc), f"{type(exc).__name__}: {exc}")
            raise
