"""Chat messages as the agent core stores and sends them (OpenAI chat shapes)."""

from __future__ import annotations

import msgspec


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str = ""  # JSON text, exactly as the model produced it


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    type: str = "function"
    function: FunctionCall


class ContentPart(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One part of a message's content in the OpenAI shape: text, or an image passed on to a vision model."""

    type: str  # "text" | "image_url"
    text: str | None = None
    image_url: dict | None = None  # {"url": ..., "detail"?: ...}


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str  # system | user | assistant | tool
    content: str | list[ContentPart] | None = None  # parts only when a message carries an image
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


def text_of(content: str | list[ContentPart] | None) -> str:
    """The text of a message's content (image parts contribute nothing)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(p.text or "" for p in content if p.type == "text")


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )
