"""Building the ``chat.completion`` and ``chat.completion.chunk`` bodies of one answer."""

from __future__ import annotations

import time

import msgspec

from bmo_openai_compat import wire

_encode = msgspec.json.Encoder().encode
_MARK = "\x00"  # a placeholder for the text; JSON writes it as \u0000


def usage_out(usage) -> wire.UsageOut:
    if usage is None:
        return wire.UsageOut(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    return wire.UsageOut(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def wire_tool_calls(tool_calls) -> list[wire.WireToolCall]:
    return [
        wire.WireToolCall(id=c.id, type="function",
                          function=wire.WireFunctionCall(name=c.function.name, arguments=c.function.arguments))
        for c in tool_calls
    ]


class Answer:
    """Same id, ``created`` and model for every chunk of one answer, and for its non-streamed form."""

    def __init__(self, request_id: str, model: str):
        self.id = f"chatcmpl-{request_id.removeprefix('req_')}"
        self.created = int(time.time())
        self.model = model
        # The bytes around the text of a content (or reasoning) delta: a chunk per upstream token costs one string encode.
        self._content = self._around(wire.Delta(content=_MARK))
        self._reasoning = self._around(wire.Delta(reasoning_content=_MARK))

    def _around(self, delta: wire.Delta) -> tuple[bytes, bytes] | None:
        parts = self._chunk(delta).split(_encode(_MARK))
        return (parts[0], parts[1]) if len(parts) == 2 else None  # None: the id or model holds the mark itself

    def _chunk(self, delta: wire.Delta, finish_reason: str | None = None) -> bytes:
        return wire.encode(wire.ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model,
            choices=[wire.ChunkChoice(delta=delta, finish_reason=finish_reason)],
        ))

    def role(self) -> bytes:
        return self._chunk(wire.Delta(role="assistant", content=""))

    def content(self, text: str) -> bytes:
        if self._content is None:
            return self._chunk(wire.Delta(content=text))
        return self._content[0] + _encode(text) + self._content[1]

    def reasoning(self, text: str) -> bytes:
        if self._reasoning is None:
            return self._chunk(wire.Delta(reasoning_content=text))
        return self._reasoning[0] + _encode(text) + self._reasoning[1]

    def refusal(self, text: str) -> bytes:
        return self._chunk(wire.Delta(refusal=text))

    def tool_calls(self, tool_calls) -> bytes:
        deltas = [
            wire.DeltaToolCall(index=i, id=c.id, type="function",
                               function=wire.DeltaFunction(name=c.function.name, arguments=c.function.arguments))
            for i, c in enumerate(tool_calls)
        ]
        return self._chunk(wire.Delta(tool_calls=deltas))

    def finish(self, finish_reason: str) -> bytes:
        return self._chunk(wire.Delta(), finish_reason)

    def usage(self, usage) -> bytes:
        return wire.encode(wire.ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=[], usage=usage_out(usage),
        ))

    def completion(self, text: str, finish_reason: str, usage, *, tool_calls=(), reasoning: str = "",
                   refusal: str | None = None) -> bytes:
        message = wire.AnswerMessage(content=text if (text or not tool_calls) and not refusal else None,
                                     refusal=refusal or None)
        if tool_calls:
            message.tool_calls = wire_tool_calls(tool_calls)
        if reasoning:
            message.reasoning_content = reasoning
        return wire.encode(wire.ChatCompletion(
            id=self.id, created=self.created, model=self.model,
            choices=[wire.Choice(message=message, finish_reason=finish_reason)], usage=usage_out(usage),
        ))
