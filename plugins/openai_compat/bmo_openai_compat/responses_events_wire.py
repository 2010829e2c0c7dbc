"""The Responses API's stream events: the typed, numbered SSE events the official SDKs parse.

Each is tagged with its ``type``; ``sequence_number`` is set as the event is written.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from bmo_openai_compat.responses_wire import OutputItem, OutputText, ResponseObject, SummaryText


class Event(msgspec.Struct, kw_only=True, tag_field="type"):
    sequence_number: int = 0  # set as the event is written


class ResponseCreated(Event, kw_only=True, tag="response.created"):
    response: ResponseObject


class ResponseInProgress(Event, kw_only=True, tag="response.in_progress"):
    response: ResponseObject


class ResponseCompleted(Event, kw_only=True, tag="response.completed"):
    response: ResponseObject


class ResponseIncomplete(Event, kw_only=True, tag="response.incomplete"):
    response: ResponseObject


class ResponseFailed(Event, kw_only=True, tag="response.failed"):
    response: ResponseObject


class OutputItemAdded(Event, kw_only=True, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class OutputItemDone(Event, kw_only=True, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class ContentPartAdded(Event, kw_only=True, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText


class ContentPartDone(Event, kw_only=True, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText


class OutputTextDelta(Event, kw_only=True, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str
    logprobs: list = []


class OutputTextDone(Event, kw_only=True, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int = 0
    text: str
    logprobs: list = []


class SummaryPartAdded(Event, kw_only=True, tag="response.reasoning_summary_part.added"):
    item_id: str
    output_index: int
    summary_index: int = 0
    part: SummaryText


class SummaryPartDone(Event, kw_only=True, tag="response.reasoning_summary_part.done"):
    item_id: str
    output_index: int
    summary_index: int = 0
    part: SummaryText


class SummaryTextDelta(Event, kw_only=True, tag="response.reasoning_summary_text.delta"):
    item_id: str
    output_index: int
    summary_index: int = 0
    delta: str


class SummaryTextDone(Event, kw_only=True, tag="response.reasoning_summary_text.done"):
    item_id: str
    output_index: int
    summary_index: int = 0
    text: str


class ArgumentsDelta(Event, kw_only=True, tag="response.function_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class ArgumentsDone(Event, kw_only=True, tag="response.function_call_arguments.done"):
    item_id: str
    output_index: int
    name: str | UnsetType = UNSET
    arguments: str


class ErrorEvent(Event, kw_only=True, tag="error"):
    code: str | None = None
    message: str
    param: str | None = None


def event_name(event: Event) -> str:
    return type(event).__struct_config__.tag
