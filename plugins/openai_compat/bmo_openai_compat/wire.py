"""Every wire shape of the compat surface: the request we accept and each response we send.

Requests decode leniently (clients send fields we do not know; those are ignored), then
``validate_chat_request`` refuses what BMO cannot honour with a 400 naming the field.
Responses encode with the shapes the official ``openai`` SDK validates strictly.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from bmo.agent.answer_format import AnswerFormat, FormatError, json_object, json_schema
from bmo.field_errors import field_error
from bmo.server.errors import ApiError

# -- the request ------------------------------------------------------------------------


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    image_url: dict | None = None


class WireFunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str = ""


class WireToolCall(msgspec.Struct, kw_only=True):
    id: str
    type: str = "function"
    function: WireFunctionCall


class FunctionSpec(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict | None = None
    strict: bool | None = None


class ToolSpec(msgspec.Struct, kw_only=True):
    type: str = "function"
    function: FunctionSpec


class RequestMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: str
    json_schema: dict | None = None


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[RequestMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    # Accepted only in their default form; anything else is refused by name.
    n: int | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    modalities: list[str] | None = None
    audio: dict | None = None
    functions: list | None = None
    function_call: str | dict | None = None
    parallel_tool_calls: bool | None = None


def decode_chat_request(body: bytes) -> tuple[ChatCompletionRequest, dict]:
    """The typed request and the raw JSON object (for extension hooks), or a 400 naming the field."""
    req, raw = decode_json_object(body, ChatCompletionRequest, "'model' and 'messages'")
    validate_chat_request(req)
    return req, raw


def decode_json_object(body: bytes, shape: type, needs: str) -> tuple[Any, dict]:
    """``body`` as a ``shape`` and as the raw JSON object; a 400 naming the field (``needs`` says what to send)."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc}). Send a JSON object with {needs}.") from None
    if not isinstance(raw, dict):
        raise ApiError(400, f"The request body must be a JSON object with {needs}.")
    try:
        return msgspec.convert(raw, shape), raw
    except msgspec.ValidationError as exc:
        param, text, problem = field_error(exc)
        if problem == "missing":
            raise ApiError(400, f"Missing required field '{param}'.", param=param) from None
        raise ApiError(400, f"Invalid value for '{param or 'body'}': {text.rstrip('.')}.", param=param) from None


def validate_chat_request(req: ChatCompletionRequest) -> None:
    """Refuse what BMO does not support, naming the field and what to send instead."""
    if not req.model.strip():
        raise ApiError(400, "Field 'model' is empty; use one of the ids GET /v1/models returns.", param="model")
    if not req.messages:
        raise ApiError(400, "Field 'messages' is empty; send at least one user message.", param="messages")
    if req.n is not None and req.n != 1:
        raise ApiError(400, f"n={req.n} is not supported: BMO returns one choice per request. Omit 'n' or send n=1.",
                       param="n")
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "'stream_options' is only allowed with stream=true.", param="stream_options")
    answer_format_of(req)
    check_tool_choice(req)
    if req.logprobs:
        raise ApiError(400, "logprobs are not supported; omit 'logprobs'.", param="logprobs")
    if req.audio is not None or (req.modalities and any(m != "text" for m in req.modalities)):
        param = "audio" if req.audio is not None else "modalities"
        raise ApiError(400, "Audio output is not supported; BMO answers in text only. Omit 'audio' and 'modalities'.",
                       param=param)
    if req.functions is not None or req.function_call is not None:
        param = "functions" if req.functions is not None else "function_call"
        raise ApiError(400, f"'{param}' is the legacy function-calling API; send 'tools' and 'tool_choice' instead.",
                       param=param)
    for name, value, low, high in (("temperature", req.temperature, 0, 2), ("top_p", req.top_p, 0, 1)):
        if value is not None and not low <= value <= high:
            raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}.", param=name)
    for field in ("max_tokens", "max_completion_tokens"):
        value = getattr(req, field)
        if value is not None and value < 1:
            raise ApiError(400, f"'{field}' must be at least 1, got {value}.", param=field)
    for i, tool in enumerate(req.tools or ()):
        if tool.type != "function":
            raise ApiError(400, f"tools[{i}].type {tool.type!r} is not supported; only \"function\" tools are.",
                           param=f"tools[{i}].type")
    for i, msg in enumerate(req.messages):
        if isinstance(msg.content, list):
            for j, part in enumerate(msg.content):
                if part.type == "image_url" and not isinstance((part.image_url or {}).get("url"), str):
                    raise ApiError(400, f"messages[{i}].content[{j}] is an image part without 'image_url.url'; send "
                                        "{\"type\": \"image_url\", \"image_url\": {\"url\": ...}}.",
                                   param=f"messages[{i}].content[{j}].image_url")
                if part.type == "image_url":
                    continue  # it reaches a vision model; any other model gets a note (see content_parts)
                if part.type != "text":
                    kind = "audio" if "audio" in part.type else part.type
                    raise ApiError(
                        400, f"messages[{i}].content[{j}] is a {part.type!r} part; {kind} input is not supported. "
                             "Send text or image parts, or a string.",
                        param=f"messages[{i}].content[{j}].type",
                    )
                if part.text is None:
                    raise ApiError(400, f"messages[{i}].content[{j}] has no 'text'.",
                                   param=f"messages[{i}].content[{j}].text")
        if msg.content is None and msg.role in ("system", "developer", "user"):
            raise ApiError(400, f"messages[{i}] ({msg.role}) has no content; send a string or text parts.",
                           param=f"messages[{i}].content")
        if msg.role == "tool" and not msg.tool_call_id:
            raise ApiError(400, f"messages[{i}] has role 'tool' but no 'tool_call_id'; name the call it answers.",
                           param=f"messages[{i}].tool_call_id")
    if not any(m.role in ("user", "tool") for m in req.messages):
        raise ApiError(400, "'messages' has no user or tool message; nothing to answer.", param="messages")


def answer_format_of(req: ChatCompletionRequest) -> AnswerFormat | None:
    """The run's answer format from ``response_format``; None for text; a 400 naming the field otherwise."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_object()
    if fmt.type != "json_schema":
        raise ApiError(400, f"response_format type {fmt.type!r} is not supported; send \"text\", \"json_object\" or "
                            "\"json_schema\".", param="response_format.type")
    spec = fmt.json_schema
    if not isinstance(spec, dict):
        raise ApiError(400, "response_format type \"json_schema\" needs 'json_schema': {\"name\": ..., \"schema\": {...}}.",
                       param="response_format.json_schema")
    strict = spec.get("strict")
    try:
        return json_schema(spec.get("name"), spec.get("schema", {}), strict=strict if isinstance(strict, bool) else None,
                           description=spec.get("description") if isinstance(spec.get("description"), str) else None)
    except FormatError as exc:
        field = "name" if "'name'" in str(exc) else "schema"
        raise ApiError(400, f"Invalid response_format.json_schema: {exc}.",
                       param=f"response_format.json_schema.{field}") from None


def check_tool_choice(req: ChatCompletionRequest) -> None:
    """``tool_choice`` is "none", "auto", "required" or a named function of ``tools``; a 400 otherwise."""
    choice, names = req.tool_choice, [t.function.name for t in req.tools or ()]
    if choice is None or choice in ("none", "auto"):
        return
    if choice == "required":
        if not names:
            raise ApiError(400, "tool_choice \"required\" needs 'tools' to choose from; send tools or omit tool_choice.",
                           param="tool_choice")
        return
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise ApiError(400, "tool_choice must be \"none\", \"auto\", \"required\" or "
                            "{\"type\": \"function\", \"function\": {\"name\": ...}}.", param="tool_choice")
    if name not in names:
        raise ApiError(400, f"tool_choice names function {name!r}, which is not in 'tools' "
                            f"({', '.join(names) or 'none sent'}). Name one of them.", param="tool_choice.function.name")


def message_text(content: str | list[ContentPart] | None) -> str | None:
    if content is None or isinstance(content, str):
        return content
    return "\n".join(part.text or "" for part in content)


def sampling_of(req: ChatCompletionRequest) -> dict[str, Any]:
    """The sampling settings the agent passes on upstream (only those the client set)."""
    out: dict[str, Any] = {}
    for key in ("temperature", "top_p", "stop", "seed"):
        value = getattr(req, key)
        if value is not None:
            out[key] = value
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    return out


def client_tools_of(req: ChatCompletionRequest) -> list[dict]:
    return [msgspec.to_builtins(t) for t in req.tools or ()]


# -- responses --------------------------------------------------------------------------


class UsageOut(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AnswerMessage(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[WireToolCall] | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET


class Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: AnswerMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut


class DeltaFunction(msgspec.Struct, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str = ""


class DeltaToolCall(msgspec.Struct, kw_only=True):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: DeltaFunction


class Delta(msgspec.Struct, kw_only=True):
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    refusal: str | UnsetType = UNSET
    tool_calls: list[DeltaToolCall] | UnsetType = UNSET


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | UnsetType = UNSET


class ModelObject(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[ModelObject]


class RunRecord(msgspec.Struct, kw_only=True):
    """One ledger row as the runs list shows it."""

    object: str = "openai_compat.run"
    request_id: str
    route: str
    kind: str
    status: str
    outcome: str | None
    http_status: int | None
    session_id: str
    run_id: str
    model: str
    stream: bool
    is_session_reuse: bool
    client_ua: str
    requester: str
    started_at: str
    finished_at: str | None
    elapsed_ms: int | None
    error: str | None


class RunPage(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[RunRecord]
    first_id: str | None
    last_id: str | None
    has_more: bool


class RunEvent(msgspec.Struct, kw_only=True):
    object: str = "openai_compat.run_event"
    seq: int
    event: str
    at: str
    elapsed_ms: int
    terminal: bool
    outcome: str | None
    detail: dict[str, Any]


class RunEventList(msgspec.Struct, kw_only=True):
    object: str = "list"
    request_id: str
    data: list[RunEvent]


class QueuedErrorBody(msgspec.Struct, kw_only=True):
    """The 409 body: the usual envelope fields plus the request that holds the session."""

    message: str
    type: str = "invalid_request_error"
    param: None = None
    code: str = "queued"
    running_request_id: str
    session_id: str
    resume_hint: str = ""  # for a program: how to follow the running answer instead of waiting
    resume_headers: dict[str, str] = {}


class QueuedError(msgspec.Struct, kw_only=True):
    error: QueuedErrorBody


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)
