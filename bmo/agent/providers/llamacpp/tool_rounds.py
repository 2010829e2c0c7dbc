"""``tool_rounds``: after that many rounds of tool calls in a turn, the model answers without tools.

Measured on Qwen2.5-Coder-0.5B (docs/local-model.md): whenever tools are in its prompt, or its
earlier calls are rendered as ``<tool_call>`` blocks, it writes another call instead of an
answer, even right after the result it asked for. Asked with no tools, and with the calls and
results it got as plain conversation, it answers from them.
"""

from __future__ import annotations

import json

from bmo.agent.messages import ChatMessage, text_of
from bmo.agent.tool_calls import NO_SUCH_TOOL, short_arguments

ANSWER_NOW = "Answer my request now. Use these results where they help; otherwise answer from what you know."


def rounds_since_user(messages: list[ChatMessage]) -> int:
    """The assistant tool-call messages after the last user message: the tool rounds of this turn so far."""
    count = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "assistant" and message.tool_calls:
            count += 1
    return count


def as_text(messages: list[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with tool calls and results as plain text: each round's results join the user's message.

    Measured: an assistant line saying what it ran is copied as the answer; results appended to
    the request ("... returned: ...") are answered from (docs/local-model.md). A call of a tool
    that does not exist, and a failed call about nothing the request names (a guessed path), are
    left out: shown them, the model answers "What is 12-5?" with the error.
    """
    out: list[ChatMessage] = []
    calls: dict[str, tuple[str, list[str]]] = {}  # tool_call_id -> ("name(arguments)", its argument values)
    results: list[str] = []
    request = ""

    def flush(last: bool) -> None:
        text = "\n\n".join([*results, ANSWER_NOW] if last else results)
        results.clear()
        if out and out[-1].role == "user" and isinstance(out[-1].content, str):
            out[-1] = ChatMessage(role="user", content=out[-1].content + "\n\n" + text)
        else:
            out.append(ChatMessage(role="user", content=text))

    for message in messages:
        if message.role == "tool":
            said, values = calls.get(message.tool_call_id or "", ("a tool", []))
            result = text_of(message.content).strip()
            # A made-up tool's "no such tool" says nothing about the request, even when its arguments name
            # the request's file (recorded: the model parroted it as the answer).
            if result.startswith(NO_SUCH_TOOL) or (result.startswith("Error:")
                                                   and not any(len(v) > 2 and v in request for v in values)):
                continue
            results.append(f"{said} returned:\n{result}")
            continue
        if results:
            flush(last=False)
        if message.role == "assistant" and message.tool_calls:
            for call in message.tool_calls:
                calls[call.id] = (f"{call.function.name}({short_arguments(call.function.arguments)})",
                                  _values(call.function.arguments))
            if text_of(message.content).strip():
                out.append(ChatMessage(role="assistant", content=text_of(message.content)))
            continue
        if message.role == "user":
            request = text_of(message.content).lower()
        out.append(message)
    if results or (out and out[-1].role == "user" and rounds_since_user(messages)):
        flush(last=True)
    return out


def _values(arguments: str) -> list[str]:
    """The string values of a call's arguments object (the paths and patterns it was about)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return []
    return [v.lower() for v in parsed.values() if isinstance(v, str)] if isinstance(parsed, dict) else []
