"""What the fake upstream answers: scripted replies and the helpers that build them.

:mod:`bmo.testing.fake_upstream` re-exports all of it, so tests import from there.
"""

from __future__ import annotations

import json

import msgspec


class ScriptedToolCall(msgspec.Struct, kw_only=True):
    """A tool call the fake model makes; ``arguments`` is the JSON text it streams."""

    name: str
    arguments: str = "{}"
    id: str = ""


class Reply(msgspec.Struct, kw_only=True):
    """One scripted answer to one chat request.

    ``status`` other than 200 answers with an OpenAI error body (``error_message``) and
    ``headers`` (e.g. ``Retry-After``). ``stall`` streams what it has, then never finishes.
    """

    text: str = ""
    chunks: int | list[str] | None = None  # a count to split ``text`` into, or the exact pieces
    reasoning: str = ""  # streamed as ``reasoning_content`` before the text
    refusal: str = ""  # streamed as ``refusal`` after the text (a structured-output refusal)
    tool_calls: list[ScriptedToolCall] = []
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    usage: dict | None = None  # default: counted from the request and the reply
    status: int = 200
    error_message: str = ""
    error_type: str = "invalid_request_error"
    error_code: str | None = None
    headers: dict[str, str] = {}
    delay_s: float = 0.0  # before the first byte (before the status line)
    chunk_delay_s: float = 0.0  # between streamed chunks
    stall: bool = False  # stream the content, then hang without finishing
    drop: bool = False  # close the connection without any answer
    raw_stream: str = ""  # a streamed answer's exact body (e.g. odd line ends), sent instead of chunks
    endless: bool = False  # after the content, stream one more chunk every chunk_delay_s until the client leaves

    def pieces(self) -> list[str]:
        if isinstance(self.chunks, list):
            return list(self.chunks)
        if not self.text:
            return []
        count = max(1, min(self.chunks or 1, len(self.text)))
        size = -(-len(self.text) // count)
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]

    def full_text(self) -> str:
        return "".join(self.chunks) if isinstance(self.chunks, list) else self.text


def reply(
    text: str = "",
    *,
    chunks: int | list[str] | None = None,
    tool_calls: list[ScriptedToolCall] | None = None,
    finish_reason: str | None = None,
    usage: dict | None = None,
    reasoning: str = "",
    refusal: str = "",
    delay_s: float = 0.0,
    chunk_delay_s: float = 0.0,
    stall: bool = False,
    endless: bool = False,
) -> Reply:
    """A successful answer: text (split into ``chunks``) and/or tool calls."""
    return Reply(
        text=text, chunks=chunks, tool_calls=list(tool_calls or []), finish_reason=finish_reason,
        usage=usage, reasoning=reasoning, refusal=refusal, delay_s=delay_s, chunk_delay_s=chunk_delay_s, stall=stall,
        endless=endless,
    )


def tool_call(name: str, arguments: dict | str | None = None, *, id: str = "") -> ScriptedToolCall:
    """A tool call for :func:`reply`; ``arguments`` as a dict (JSON-encoded) or raw text."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ScriptedToolCall(name=name, arguments=args, id=id)


def error(
    status: int,
    message: str = "",
    *,
    retry_after: float | int | str | None = None,
    type: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """An HTTP error answer with an OpenAI error body (429 with ``retry_after`` sets Retry-After)."""
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    default_type = "rate_limit_error" if status == 429 else ("server_error" if status >= 500 else "invalid_request_error")
    return Reply(
        status=status, error_message=message or f"fake upstream error {status}", error_type=type or default_type,
        error_code=code, headers=hdrs, delay_s=delay_s,
    )


def drop_connection(*, delay_s: float = 0.0) -> Reply:
    """Close the connection without answering (a crashed upstream)."""
    return Reply(drop=True, delay_s=delay_s)


def echo_last_user(body: dict) -> Reply:
    """The default reply: the last user message's text, echoed back."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return reply(f"echo: {content or ''}", chunks=3)
    return reply("echo: (no user message)")


def count_usage(body: dict, r: Reply) -> dict:
    """Token counts for a reply: words stand in for tokens, deterministic and non-zero with content."""
    prompt = sum(len(str(m.get("content") or "").split()) + 1 for m in body.get("messages") or [])
    completion = len(r.full_text().split()) + sum(1 + len(c.arguments) // 8 for c in r.tool_calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
