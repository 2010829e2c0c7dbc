"""Tool calls a model wrote as text: ``{"name": ..., "arguments": {...}}`` bare, in a ```json fence or in <tool_call> tags.

Small local models often answer a tool turn with the call as JSON content instead of
``tool_calls``. :class:`TextToolCalls` wraps a provider's stream: it passes prose through as
it arrives, holds back only text that may still become a call, and at the end of the turn
turns a held call naming an offered tool into a structured :class:`ToolCall`. Anything else
(prose that mentions JSON, a JSON answer, a tool that was not offered) is released unchanged,
unless ``any_name``: then a call to a tool that was not offered is a call too, which the loop
answers "there is no tool named ..." (a small model's call to an ``add`` it made up is no answer).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable

import msgspec

from bmo.agent.events import TextDelta
from bmo.agent.messages import FunctionCall, ToolCall
from bmo.agent.providers.base import ModelTurn, StreamItem

OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"
_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(?P<body>.*?)\n?```\Z", re.S)
_TAGGED = re.compile(re.escape(OPEN_TAG) + r"(?P<body>.*?)" + re.escape(CLOSE_TAG), re.S)
_KEYS = ('"name"', '"arguments"')  # a call's object starts with one of these keys
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")  # what OpenAI accepts as a function name, near enough
# A call whose arguments are not JSON (recorded: {"product": 7 * 6}); the loop answers that they are not valid.
_MALFORMED = re.compile(r'\A\{\s*"name"\s*:\s*"(?P<name>[^"\\]+)"\s*,\s*"arguments"\s*:\s*(?P<arguments>\{.*\})\s*\}\Z', re.S)


def offered_names(tools: Iterable[dict] | None) -> set[str]:
    """The function names of an OpenAI ``tools`` list."""
    names = set()
    for tool in tools or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


def _object_of(text: str) -> object:
    """``text`` decoded as JSON; an object missing its last one or two closing braces is completed."""
    for tail in ("", "}", "}}"):  # recorded: a 0.5B model stopping just before its final "}"
        try:
            return msgspec.json.decode(text + tail)
        except msgspec.DecodeError:
            if not text.startswith("{"):
                return None
    return None


def _call_of(text: str, offered: set[str], any_name: bool = False) -> FunctionCall | None:
    """The call ``text`` (one JSON object, nothing else) is, or None."""
    obj = _object_of(text.strip())
    if (obj is None and any_name and text.count('"name"') == 1 and (bad := _MALFORMED.match(text.strip()))
            and _TOOL_NAME.fullmatch(bad["name"])):
        return FunctionCall(name=bad["name"], arguments=bad["arguments"])
    if not isinstance(obj, dict) or set(obj) - {"name", "arguments"}:
        return None
    name = obj.get("name")
    # A tool that was not offered needs the whole shape of a call: a name like a tool's and "arguments".
    if name not in offered and not (any_name and "arguments" in obj and isinstance(name, str)
                                    and _TOOL_NAME.fullmatch(name)):
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models encode the arguments object once more, as OpenAI does on the wire
        try:
            args = msgspec.json.decode(args)
        except msgspec.DecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return FunctionCall(name=obj["name"], arguments=msgspec.json.encode(args).decode())


def parse(text: str, offered: set[str], any_name: bool = False) -> tuple[str, list[FunctionCall]]:
    """``(prose, calls)``: the calls ``text`` holds and the prose outside them; no calls: ``(text, [])``.

    A bare or fenced call must be the whole text (prose around it is prose, not a call); tagged
    calls may follow or precede prose, and every tag must hold a call of an offered tool (of any
    tool, with ``any_name``).
    """
    stripped = text.strip()
    if not offered or not stripped:
        return text, []
    fenced = _FENCE.match(stripped)
    body = fenced.group("body") if fenced else stripped
    call = _call_of(body, offered, any_name)
    if call is not None:
        return "", [call]
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) > 1:  # several bare calls, one per line (fenced or not): every line must be one
        per_line = [_call_of(line, offered, any_name) for line in lines]
        if all(c is not None for c in per_line):
            return "", [c for c in per_line if c is not None]
    tagged = list(_TAGGED.finditer(text))
    if not tagged:
        return text, []
    calls = [_call_of(m.group("body"), offered, any_name) for m in tagged]
    if any(c is None for c in calls):
        return text, []
    prose = _TAGGED.sub("", text).strip()
    return prose, [c for c in calls if c is not None]


def _may_open_call(text: str) -> bool:
    """Whether ``text`` (left-stripped, the start of an answer) may still turn out to be a call."""
    for opener in (OPEN_TAG, "```json", "```", ""):
        if opener and opener.startswith(text):
            return True  # still typing the opener
        if text.startswith(opener):
            rest = text[len(opener):].lstrip()
            if not rest:
                return True
            if not rest.startswith("{"):
                continue
            key = rest[1:].lstrip()
            return any(k.startswith(key) or key.startswith(k) for k in _KEYS)
    return False


def _partial_tag(text: str) -> int:
    """How many trailing characters of ``text`` may be the start of ``<tool_call>``."""
    for n in range(min(len(OPEN_TAG) - 1, len(text)), 0, -1):
        if OPEN_TAG.startswith(text[-n:]):
            return n
    return 0


class TextToolCalls:
    """One model turn's text tool-call recognition, for the tools offered to it."""

    def __init__(self, offered: set[str], any_name: bool = False):
        self.offered = offered
        self.any_name = any_name
        self.passed: list[str] = []  # text already handed on
        self.held = ""
        self.mode = "start"  # start: nothing seen | prose: passing on | call: holding what may be a call

    def feed(self, piece: str) -> str:
        """The part of ``piece`` that can be passed on now (the rest is held)."""
        self.held += piece
        if self.mode == "call":
            return ""
        if self.mode == "start":
            head = self.held.lstrip()
            if not head:
                return ""
            if _may_open_call(head):
                return ""
            self.mode = "prose"
        at = self.held.find(OPEN_TAG)
        if at >= 0:
            out, self.held, self.mode = self.held[:at], self.held[at:], "call"
        else:
            keep = _partial_tag(self.held)
            out, self.held = self.held[:len(self.held) - keep], self.held[len(self.held) - keep:]
        self.passed.append(out)
        return out

    def finish(self, turn: ModelTurn) -> tuple[str, ModelTurn]:
        """``(text still to pass on, the turn to hand on)`` at the end of the stream."""
        held, self.held = self.held, ""
        prose, calls = ("", []) if turn.tool_calls else parse(held, self.offered, self.any_name)
        if not calls:
            self.passed.append(held)
            return held, msgspec.structs.replace(turn, text="".join(self.passed))
        tail = ("\n" + prose) if prose and self.passed and "".join(self.passed).strip() else prose
        self.passed.append(tail)
        tool_calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function=c) for c in calls]
        return tail, msgspec.structs.replace(turn, text="".join(self.passed).strip(), tool_calls=tool_calls,
                                             finish_reason="tool_calls")

    async def wrap(self, items: AsyncIterator[StreamItem]) -> AsyncIterator[StreamItem]:
        """``items`` with text tool calls made structured."""
        async for item in items:
            if isinstance(item, TextDelta):
                out = self.feed(item.text)
                if out:
                    yield TextDelta(text=out)
            elif isinstance(item, ModelTurn):
                out, turn = self.finish(item)
                if out:
                    yield TextDelta(text=out)
                yield turn
            else:
                yield item


def recognise(items: AsyncIterator[StreamItem], tools: list[dict] | None, tool_choice: object,
              any_name: bool = False) -> AsyncIterator[StreamItem]:
    """``items`` through :class:`TextToolCalls` when tools are offered and may be called; else unchanged."""
    offered = offered_names(tools)
    if not offered or tool_choice == "none":
        return items
    return TextToolCalls(offered, any_name).wrap(items)
