"""What a model provider is: something that streams one model turn for a list of messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from bmo.agent.events import ReasoningDelta, TextDelta
from bmo.agent.messages import ChatMessage, ToolCall, Usage


class ModelTurn(msgspec.Struct, kw_only=True):
    """One finished model answer, assembled from the stream."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    finish_reason: str = "stop"
    usage: Usage = msgspec.field(default_factory=Usage)
    refusal: str = ""  # the upstream declined to answer (OpenAI structured outputs' ``refusal``)
    response_model: str = ""  # the ``model`` the upstream said answered (``gen_ai.response.model``)


StreamItem = TextDelta | ReasoningDelta | ModelTurn


class Provider(Protocol):
    """A provider kind's instance for one ``[providers.NAME]`` table.

    ``stream`` yields text and reasoning deltas as the upstream produces them and ends with
    exactly one :class:`ModelTurn`; failures raise :mod:`bmo.agent.errors` types.
    ``sampling`` may hold ``parallel_tool_calls``, meaningful only with ``tools``;
    ``response_format`` is an OpenAI chat ``response_format`` for this call.
    """

    name: str
    models: list[str]  # upstream model names, without the "NAME/" prefix

    async def discover(self) -> list[str]: ...

    def stream(
        self, model: str, messages: list[ChatMessage], *, tools: list[dict] | None = None,
        tool_choice: object = None, sampling: dict | None = None, response_format: dict | None = None,
    ) -> AsyncIterator[StreamItem]: ...

    async def close(self) -> None: ...
