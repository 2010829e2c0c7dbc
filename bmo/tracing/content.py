"""Opt-in message content on model and tool spans, bounded in size.

Off by default (prompts and tool output are often private). On with ``[tracing] capture_content
= true`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``. Content goes in two
attribute families, so both kinds of backend render it:

- the GenAI semantic conventions: ``gen_ai.input.messages``, ``gen_ai.output.messages`` (JSON
  lists of ``{role, parts}``), ``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``;
- OpenInference, which Arize Phoenix reads for its Input/Output panes: ``input.value``,
  ``output.value`` with ``input.mime_type``/``output.mime_type``.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRUNCATED = "…[truncated]"


def _bound(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(0, limit - len(TRUNCATED.encode()))].decode("utf-8", errors="ignore") + TRUNCATED


def _parts(message: Any) -> dict:
    """One message in the semconv shape: ``{"role", "parts": [{"type": "text"|"tool_call"|...}]}``."""
    role = getattr(message, "role", "")
    content = getattr(message, "content", None)
    parts: list[dict] = []
    if isinstance(content, str) and content:
        parts.append({"type": "tool_call_response", "id": getattr(message, "tool_call_id", None), "response": content}
                     if role == "tool" else {"type": "text", "content": content})
    elif isinstance(content, list):
        parts.append({"type": "text", "content": json.dumps(content, default=str)})
    for call in getattr(message, "tool_calls", None) or ():
        parts.append({"type": "tool_call", "id": call.id, "name": call.function.name,
                      "arguments": call.function.arguments})
    return {"role": role, "parts": parts}


@dataclass(frozen=True)
class ContentCapture:
    """Whether content is captured, and the byte bound of each attribute value."""

    enabled: bool = False
    max_bytes: int = 8192

    @classmethod
    def from_config(cls, options: Any, env: dict[str, str]) -> ContentCapture:
        by_env = env.get(CAPTURE_ENV, "").strip().lower() in ("true", "1", "yes")
        return cls(enabled=bool(getattr(options, "capture_content", False)) or by_env,
                   max_bytes=int(getattr(options, "capture_max_bytes", 8192)))

    def _set(self, span: Any, key: str, text: str) -> None:
        span.set_attribute(key, _bound(text, self.max_bytes))

    def model_content(self, span: Any, messages: list, turn: Any) -> None:
        """Input messages and the model's output (text and tool calls) of one chat call."""
        inputs = json.dumps([_parts(m) for m in messages], ensure_ascii=False)
        out = {"role": "assistant", "parts": [], "finish_reason": turn.finish_reason}
        if turn.text:
            out["parts"].append({"type": "text", "content": turn.text})
        for call in turn.tool_calls or ():
            out["parts"].append({"type": "tool_call", "id": call.id, "name": call.function.name,
                                 "arguments": call.function.arguments})
        self._set(span, "gen_ai.input.messages", inputs)
        self._set(span, "gen_ai.output.messages", json.dumps([out], ensure_ascii=False))
        self._set(span, "input.value", inputs)
        span.set_attribute("input.mime_type", "application/json")
        self._set(span, "output.value", turn.text or json.dumps(out["parts"], ensure_ascii=False))
        span.set_attribute("output.mime_type", "text/plain" if turn.text else "application/json")

    def prompt_content(self, span: Any, prompt: str, turn: Any) -> None:
        """A legacy completion: the prompt in, the text out."""
        self._set(span, "gen_ai.input.messages",
                  json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}], ensure_ascii=False))
        self._set(span, "gen_ai.output.messages", json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": turn.text}],
              "finish_reason": turn.finish_reason}], ensure_ascii=False))
        self._set(span, "input.value", prompt)
        self._set(span, "output.value", turn.text)

    def tool_content(self, span: Any, arguments: str, result: str) -> None:
        """A tool call's arguments (JSON text) and result."""
        self._set(span, "gen_ai.tool.call.arguments", arguments)
        self._set(span, "gen_ai.tool.call.result", result)
        self._set(span, "input.value", arguments)
        span.set_attribute("input.mime_type", "application/json")
        self._set(span, "output.value", result)
        span.set_attribute("output.mime_type", "text/plain")


_OFF = ContentCapture()
# The capture setting of each host's tracer: telemetry sees only the tracer, not the config.
_BY_TRACER: weakref.WeakKeyDictionary[Any, ContentCapture] = weakref.WeakKeyDictionary()


def register(tracer: Any, capture: ContentCapture) -> None:
    _BY_TRACER[tracer] = capture


def capture_for(tracer: Any) -> ContentCapture:
    """The tracer's capture setting; off for an unknown tracer or None."""
    if tracer is None:
        return _OFF
    try:
        return _BY_TRACER.get(tracer, _OFF)
    except TypeError:  # an object that cannot be weakly referenced was never registered
        return _OFF
