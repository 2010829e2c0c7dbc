"""The wire shape of one streamed OpenAI chat-completion chunk, and what assembling an answer from them needs."""

from __future__ import annotations

from typing import Any

import msgspec

from bmo.agent.messages import Usage


# The shape of one streamed chunk, decoded in one pass (unknown fields are skipped, not built).
# Fields the old dict code type-checked itself stay ``Any``; usage and errors arrive once per stream.
class FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: Any = None
    reasoning: Any = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Choice(msgspec.Struct):
    delta: Delta | None = None
    finish_reason: str | None = None


class Chunk(msgspec.Struct):
    choices: list[Choice] | None = None
    usage: Any = None
    error: Any = None


CHUNK_DECODER = msgspec.json.Decoder(Chunk)


def merge_tool_delta(calls: dict[int, dict], tc: ToolCallDelta) -> None:
    index = tc.index if tc.index is not None else len(calls)
    entry = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if tc.id:
        entry["id"] = tc.id
    fn = tc.function
    if fn is not None and fn.name:
        entry["name"] += fn.name
    if fn is not None and fn.arguments:
        entry["arguments"] += fn.arguments


def usage_of(raw: dict) -> Usage:
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    total = int(raw.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
