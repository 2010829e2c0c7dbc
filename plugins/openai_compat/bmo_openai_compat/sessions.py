"""Session ids of chat requests, and request messages in the agent's message shape (see ``transcript``)."""

from __future__ import annotations

import re

from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall
from bmo.server.errors import ApiError
from bmo_openai_compat.content_parts import agent_content
from bmo_openai_compat.wire import RequestMessage

SESSION_HEADER = "X-BMO-Session-Id"
RESUME_HEADER = "X-BMO-Resume"
_SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def check_session_id(value: str, source: str = SESSION_HEADER) -> str:
    value = value.strip()
    if not _SESSION_ID.match(value):
        raise ApiError(400, f"{source} {value[:40]!r} is not a usable session id: use 1-128 characters from "
                            "letters, digits and . _ : @ -", param=source)
    return value


def to_agent(message: RequestMessage, *, images: bool = False, model: str = "") -> ChatMessage:
    """The agent's message for a request message; image parts kept only when the model takes them."""
    role = "system" if message.role == "developer" else message.role
    calls = None
    if message.tool_calls:
        calls = [ToolCall(id=c.id, function=FunctionCall(name=c.function.name, arguments=c.function.arguments))
                 for c in message.tool_calls]
    content, _ = agent_content(message.content, images=images, model=model)
    return ChatMessage(role=role, content=content, tool_calls=calls,
                       tool_call_id=message.tool_call_id, name=message.name)
