"""The wire shapes of the legacy ``POST /v1/completions``: the request we accept and the ``text_completion`` we send."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from bmo.server.errors import ApiError
from bmo_openai_compat.wire import StreamOptions, UsageOut, decode_json_object


class CompletionRequest(msgspec.Struct, kw_only=True):
    model: str
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Accepted only in their default form; anything else is refused by name.
    n: int | None = None
    best_of: int | None = None
    echo: bool | None = None
    logprobs: int | None = None


def decode_completion_request(body: bytes) -> CompletionRequest:
    """The typed request, or a 400 naming the field."""
    req, _ = decode_json_object(body, CompletionRequest, "'model' and 'prompt'")
    if not req.model.strip():
        raise ApiError(400, "Field 'model' is empty; use one of the ids GET /v1/models returns.", param="model")
    prompts = prompts_of(req)
    if not prompts or len(prompts) > 16:
        raise ApiError(400, "'prompt' must be a string or a list of 1 to 16 strings (token arrays are not supported).",
                       param="prompt")
    for name in ("n", "best_of"):
        value = getattr(req, name)
        if value is not None and value != 1:
            raise ApiError(400, f"{name}={value} is not supported: BMO returns one choice per prompt. Omit '{name}'.",
                           param=name)
    if req.echo:
        raise ApiError(400, "echo is not supported; omit 'echo' (the prompt is yours already).", param="echo")
    if req.logprobs:
        raise ApiError(400, "logprobs are not supported; omit 'logprobs'.", param="logprobs")
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "'stream_options' is only allowed with stream=true.", param="stream_options")
    if req.max_tokens is not None and req.max_tokens < 1:
        raise ApiError(400, f"'max_tokens' must be at least 1, got {req.max_tokens}.", param="max_tokens")
    for name, value, low, high in (("temperature", req.temperature, 0, 2), ("top_p", req.top_p, 0, 1)):
        if value is not None and not low <= value <= high:
            raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}.", param=name)
    return req


def prompts_of(req: CompletionRequest) -> list[str]:
    return [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)


def sampling_of(req: CompletionRequest) -> dict[str, Any]:
    """The sampling settings passed upstream (only those the client set)."""
    keys = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
    return {k: getattr(req, k) for k in keys if getattr(req, k) is not None}


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int
    logprobs: None = None
    finish_reason: str | None


class TextCompletion(msgspec.Struct, kw_only=True):
    """A ``text_completion``; streamed chunks have the same shape (``usage`` on the last one only, if asked)."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | UnsetType = UNSET
