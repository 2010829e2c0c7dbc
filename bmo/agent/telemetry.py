"""OpenTelemetry spans for model and tool calls, with GenAI semantic-convention attributes.

Spans start in the current context, so a route's request span is their parent (the run's
task copies the context of whoever started it).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

_NOOP = trace.NoOpTracer()


def _or_noop(tracer: Any):
    return tracer or _NOOP


@contextmanager
def chat_span(tracer: Any, *, provider: str, model: str, run_id: str | None = None, session_id: str | None = None):
    """``chat {model}``: one model call (``model`` as the upstream knows it). Set usage with :func:`record_usage`.

    ``tracer`` None: the span is a no-op.
    """
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider,
             "gen_ai.system": provider, "bmo.model": f"{provider}/{model}"}
    if run_id:
        attrs["bmo.run_id"] = run_id
    if session_id:
        attrs["gen_ai.conversation.id"] = session_id
    with _or_noop(tracer).start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", type(exc).__name__)
            raise


def record_usage(span: Any, *, input_tokens: int, output_tokens: int, finish_reason: str, response_model: str = "") -> None:
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)


@contextmanager
def tool_span(tracer: Any, *, name: str, call_id: str, tool_class: str, run_id: str | None = None):
    """``execute_tool {name}``: one tool call."""
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id,
             "gen_ai.tool.type": "function", "bmo.tool.class": tool_class}
    if run_id:
        attrs["bmo.run_id"] = run_id
    with _or_noop(tracer).start_as_current_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attrs,
                                             record_exception=False, set_status_on_exception=False) as span:
        yield span
