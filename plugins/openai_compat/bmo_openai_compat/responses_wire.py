"""The Responses API's wire shapes: the ``POST /v1/responses`` request, the response object and its items.

Requests decode leniently (unknown fields are ignored, as in ``wire.py``); ``validate`` refuses what
BMO cannot honour with a 400 naming the field. Everything we send is shaped so that the official
``openai`` SDK's strict validation parses it (``openai.types.responses``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from bmo.agent.answer_format import AnswerFormat, FormatError, json_object, json_schema
from bmo.field_errors import field_error
from bmo.server.errors import ApiError

# -- the request ------------------------------------------------------------------------


class InputPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class InputItem(msgspec.Struct, kw_only=True):
    """One input item; a message without ``type`` (the "easy" form) counts as ``type = "message"``."""

    type: str = "message"
    id: str | None = None
    role: str | None = None
    content: str | list[InputPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputPart] | None = None
    status: str | None = None


class TextFormat(msgspec.Struct, kw_only=True):
    type: str = "text"
    name: str | None = None
    schema: dict | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponseCreateRequest(msgspec.Struct, kw_only=True):
    model: str | None = None  # may be left out when previous_response_id names the session's model
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    # Accepted only in their default form; anything else is refused by name.
    background: bool | None = None
    conversation: str | dict | None = None


def decode_request(body: bytes) -> ResponseCreateRequest:
    """The typed request, or a 400 naming the field (the same rules as chat's decoding)."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc}). Send a JSON object with "
                            "'model' and 'input'.") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "The request body must be a JSON object with 'model' and 'input'.")
    try:
        req = msgspec.convert(raw, ResponseCreateRequest)
    except msgspec.ValidationError as exc:
        param, text, problem = field_error(exc)
        if problem == "missing":
            raise ApiError(400, f"Missing required field '{param}'.", param=param) from None
        raise ApiError(400, f"Invalid value for '{param or 'body'}': {text.rstrip('.')}.", param=param) from None
    validate(req)
    return req


MESSAGE_ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text")


def validate(req: ResponseCreateRequest) -> None:
    """Refuse what BMO does not support, naming the field and what to send instead."""
    if req.model is not None and not req.model.strip():
        raise ApiError(400, "Field 'model' is empty; use one of the ids GET /v1/models returns.", param="model")
    if req.input is None or req.input == "" or req.input == []:
        raise ApiError(400, "Field 'input' is empty; send a string or a list of input items.", param="input")
    if req.background:
        raise ApiError(400, "background=true is not supported: BMO answers while the request is open. Omit "
                            "'background' (stream=true shows progress).", param="background")
    if req.conversation is not None:
        raise ApiError(400, "'conversation' is not supported; continue a conversation with "
                            "'previous_response_id'.", param="conversation")
    for name, value, low, high in (("temperature", req.temperature, 0, 2), ("top_p", req.top_p, 0, 1)):
        if value is not None and not low <= value <= high:
            raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}.", param=name)
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise ApiError(400, f"'max_output_tokens' must be at least 1, got {req.max_output_tokens}.",
                       param="max_output_tokens")
    answer_format_of(req)
    for i, tool in enumerate(req.tools or ()):
        if tool.get("type") == "function" and not isinstance(tool.get("name"), str):
            raise ApiError(400, f"tools[{i}] is a function tool without a 'name'; Responses tools are flat: "
                                "{\"type\": \"function\", \"name\": ..., \"parameters\": {...}}.",
                           param=f"tools[{i}].name")
    check_tool_choice(req)
    if isinstance(req.input, list):
        for i, item in enumerate(req.input):
            _validate_item(i, item)


def answer_format_of(req: ResponseCreateRequest) -> AnswerFormat | None:
    """The run's answer format from ``text.format`` (chat's ``response_format``, flat); None for text."""
    fmt = req.text.format if req.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_object()
    if fmt.type != "json_schema":
        raise ApiError(400, f"text.format type {fmt.type!r} is not supported; send \"text\", \"json_object\" or "
                            "\"json_schema\".", param="text.format.type")
    if fmt.schema is None:
        raise ApiError(400, "text.format type \"json_schema\" needs 'name' and 'schema': {\"type\": \"json_schema\", "
                            "\"name\": ..., \"schema\": {...}} (flat, not under 'json_schema').",
                       param="text.format.schema")
    try:
        return json_schema(fmt.name, fmt.schema, strict=fmt.strict, description=fmt.description)
    except FormatError as exc:
        field = "name" if "'name'" in str(exc) else "schema"
        raise ApiError(400, f"Invalid text.format: {exc}.", param=f"text.format.{field}") from None


def text_echo(req: ResponseCreateRequest) -> dict:
    """The response object's ``text``: the format as the client sent it."""
    fmt = req.text.format if req.text is not None else None
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}}
    return {"format": {k: v for k, v in msgspec.to_builtins(fmt).items() if v is not None}}


def check_tool_choice(req: ResponseCreateRequest) -> None:
    """``tool_choice`` is "none", "auto", "required" or a named function of ``tools`` (flat); a 400 otherwise."""
    choice, names = req.tool_choice, [t.get("name") for t in req.tools or () if t.get("type") == "function"]
    if choice is None or choice in ("none", "auto"):
        return
    if choice == "required":
        if not names:
            raise ApiError(400, "tool_choice \"required\" needs function 'tools' to choose from; send tools or omit "
                                "tool_choice.", param="tool_choice")
        return
    name = choice.get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise ApiError(400, "tool_choice must be \"none\", \"auto\", \"required\" or "
                            "{\"type\": \"function\", \"name\": ...} (flat in the Responses API).", param="tool_choice")
    if name not in names:
        raise ApiError(400, f"tool_choice names function {name!r}, which is not in 'tools' "
                            f"({', '.join(names) or 'none sent'}). Name one of them.", param="tool_choice.name")


def upstream_tool_choice(req: ResponseCreateRequest) -> str | dict | None:
    """A forcing ``tool_choice`` in the chat shape the agent core sends upstream; None when nothing is forced."""
    choice = req.tool_choice
    if choice in (None, "auto", "none"):
        return None
    if choice == "required":
        return "required"
    return {"type": "function", "function": {"name": choice["name"]}}


def _validate_item(i: int, item: InputItem) -> None:
    where = f"input[{i}]"
    if item.type == "message":
        if item.role not in MESSAGE_ROLES:
            raise ApiError(400, f"{where}.role {item.role!r} is not one of {', '.join(MESSAGE_ROLES)}.",
                           param=f"{where}.role")
        if item.content is None:
            raise ApiError(400, f"{where} has no content; send a string or input_text parts.",
                           param=f"{where}.content")
        for j, part in enumerate(item.content if isinstance(item.content, list) else ()):
            if part.type not in TEXT_PARTS:
                raise ApiError(400, f"{where}.content[{j}] is a {part.type!r} part; only text input is supported. "
                                    "Send input_text parts or a string.", param=f"{where}.content[{j}].type")
            if part.text is None:
                raise ApiError(400, f"{where}.content[{j}] has no 'text'.", param=f"{where}.content[{j}].text")
    elif item.type == "function_call":
        for field in ("call_id", "name"):
            if not getattr(item, field):
                raise ApiError(400, f"{where} is a function_call without '{field}'.", param=f"{where}.{field}")
    elif item.type == "function_call_output":
        if not item.call_id:
            raise ApiError(400, f"{where} is a function_call_output without 'call_id'; name the call it answers.",
                           param=f"{where}.call_id")
        if item.output is None:
            raise ApiError(400, f"{where} is a function_call_output without 'output'.", param=f"{where}.output")
    elif item.type not in ("reasoning", "item_reference"):
        raise ApiError(400, f"{where}.type {item.type!r} is not supported; send message, function_call or "
                            "function_call_output items.", param=f"{where}.type")


def part_text(content: str | list[InputPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(part.text or "" for part in content)


def function_tools(req: ResponseCreateRequest) -> list[dict]:
    """The client's function tools in the chat shape the agent core offers upstream."""
    out = []
    for tool in req.tools or ():
        if tool.get("type") != "function":
            continue
        spec = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": spec})
    return out


def sampling_of(req: ResponseCreateRequest) -> dict[str, Any]:
    """The sampling settings the agent passes on upstream (only those the client set)."""
    out: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        value = getattr(req, key)
        if value is not None:
            out[key] = value
    if req.max_output_tokens is not None:
        out["max_tokens"] = req.max_output_tokens
    return out


# -- items we send ----------------------------------------------------------------------


class OutputText(msgspec.Struct, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list = []
    logprobs: list = []


class InputText(msgspec.Struct, kw_only=True, tag_field="type", tag="input_text"):
    text: str


class OutputRefusal(msgspec.Struct, kw_only=True, tag_field="type", tag="refusal"):
    refusal: str


class OutputMessage(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputText | OutputRefusal]


class InputMessage(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: str = "completed"
    role: str
    content: list[InputText]


class SummaryText(msgspec.Struct, kw_only=True, tag_field="type", tag="summary_text"):
    text: str


class ReasoningItem(msgspec.Struct, kw_only=True, tag_field="type", tag="reasoning"):
    id: str
    summary: list[SummaryText]
    status: str = "completed"


class FunctionCallItem(msgspec.Struct, kw_only=True, tag_field="type", tag="function_call"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str = "completed"


class FunctionCallOutputItem(msgspec.Struct, kw_only=True, tag_field="type", tag="function_call_output"):
    id: str
    call_id: str
    output: str
    status: str = "completed"


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseErrorOut(msgspec.Struct, kw_only=True):
    code: str  # one of the SDK's ResponseError codes
    message: str


OutputItem = OutputMessage | ReasoningItem | FunctionCallItem


class ResponseObject(msgspec.Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    model: str
    output: list[OutputItem] = []
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    parallel_tool_calls: bool = True
    tool_choice: str | dict = "auto"
    tools: list[dict] = []
    text: dict = msgspec.field(default_factory=lambda: {"format": {"type": "text"}})
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = {}
    usage: ResponseUsage | None = None
    error: ResponseErrorOut | None = None
    incomplete_details: dict | None = None


class ResponseDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: str = "response.deleted"
    deleted: bool = True


StoredItem = InputMessage | OutputMessage | FunctionCallItem | FunctionCallOutputItem


class InputItemList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[dict]  # stored StoredItems, read back as they were written
    first_id: str | None
    last_id: str | None
    has_more: bool


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)
