"""The ``openai`` provider kind: any OpenAI-compatible upstream, spoken to with aiohttp.

Every call streams, so text reaches the caller as the upstream produces it; a
non-streaming caller simply collects. Connect errors, 429 and 5xx are retried only
before the first byte of a successful answer: after that a retry could duplicate text.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec

from bmo.agent.config import ProviderOptions
from bmo.agent.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from bmo.agent.events import ReasoningDelta, TextDelta
from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall, Usage
from bmo.agent.providers.base import ModelTurn, StreamItem
from bmo.streaming.sse_parser import SseLineTooLong, SseParser

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# The shape of one streamed chunk, decoded in one pass (unknown fields are skipped, not built).
# Fields the old dict code type-checked itself stay ``Any``; usage and errors arrive once per stream.
class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: Any = None
    reasoning: Any = None
    refusal: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    model: Any = None
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = None


_CHUNK = msgspec.json.Decoder(_Chunk)
_ENCODE = msgspec.json.Encoder().encode


class OpenAIProvider:
    """One ``[providers.NAME]`` table of kind ``openai``."""

    def __init__(self, name: str, options: ProviderOptions, host: Any = None):
        if not options.base_url:
            raise ValueError(f'[providers.{name}] needs base_url, e.g. base_url = "http://127.0.0.1:8080/v1"')
        self.name = name
        self.options = options
        self.host = host
        self.base_url = options.base_url.rstrip("/")
        if options.max_sse_line_bytes < 1:
            raise ValueError(f"[providers.{name}] max_sse_line_bytes must be 1 or more, got {options.max_sse_line_bytes}")
        if options.max_connections < 0:
            raise ValueError(f"[providers.{name}] max_connections must be 0 (no limit) or more, "
                             f"got {options.max_connections}")
        self.models: list[str] = list(options.models)
        self._session: aiohttp.ClientSession | None = None
        self._no_completions = False  # learnt: the upstream has no legacy /completions endpoint

    # -- plumbing ------------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # aiohttp's default caps a session at 100 connections: the 101st concurrent model call would queue.
            connector = aiohttp.TCPConnector(limit=self.options.max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.options.headers}
        key = os.environ.get(self.options.api_key_env, "") if self.options.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _timeout(self) -> aiohttp.ClientTimeout:
        t = self.options.timeout_s
        return aiohttp.ClientTimeout(total=None, sock_connect=min(t, 15.0), sock_read=t)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- discovery -----------------------------------------------------------------
    async def discover(self) -> list[str]:
        """Fill ``models`` from ``GET {base_url}/models`` when the config lists none."""
        if self.options.models:
            return self.models
        url = f"{self.base_url}/models"
        try:
            # Discovery runs during startup: bounded tighter than a model call.
            timeout = aiohttp.ClientTimeout(total=min(self.options.timeout_s, 10.0))
            async with self._http().get(url, headers=self._headers(), timeout=timeout) as resp:
                if resp.status != 200:
                    raise UpstreamError(resp.status, f"GET {url} answered {resp.status}: {await _error_text(resp)}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UpstreamUnreachable(f"Cannot list models of provider '{self.name}' at {url}: {_describe(exc)}") from exc
        self.models = [str(m["id"]) for m in body.get("data", []) if isinstance(m, dict) and "id" in m]
        return self.models

    # -- one model turn ------------------------------------------------------------
    def request_body(self, model: str, messages: list[ChatMessage], tools, tool_choice, sampling,
                     response_format: dict | None = None) -> dict:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,  # msgspec encodes the structs directly
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        for key, value in (sampling or {}).items():
            # OpenAI refuses parallel_tool_calls on a request without tools.
            if value is not None and (key != "parallel_tool_calls" or tools):
                body[key] = value
        if response_format is not None:
            body["response_format"] = response_format
        return body

    async def stream(
        self, model: str, messages: list[ChatMessage], *, tools: list[dict] | None = None,
        tool_choice: object = None, sampling: dict | None = None, response_format: dict | None = None,
    ) -> AsyncIterator[StreamItem]:
        """Deltas as they arrive, then one :class:`ModelTurn`."""
        body = self.request_body(model, messages, tools, tool_choice, sampling, response_format)
        resp = await self._open(body)
        try:
            async for item in self._read(resp):
                yield item
        finally:
            # Closing (not releasing) drops the connection, so the upstream sees us leave mid-answer.
            resp.close()

    async def _open(self, body: dict, path: str = "/chat/completions") -> aiohttp.ClientResponse:
        url = f"{self.base_url}{path}"
        payload = _ENCODE(body)
        attempt = 0
        while True:
            wait = self.options.retry_backoff_s * (2 ** attempt)
            try:
                resp = await self._http().post(url, data=payload, headers=self._headers(), timeout=self._timeout())
            except asyncio.TimeoutError as exc:
                if isinstance(exc, aiohttp.ConnectionTimeoutError) and attempt < self.options.max_retries:
                    attempt += 1
                    await asyncio.sleep(min(wait, self.options.max_retry_wait_s))
                    continue
                raise UpstreamTimeout(
                    f"Provider '{self.name}' at {url} did not answer within {self.options.timeout_s:g}s "
                    f"([providers.{self.name}] timeout_s)."
                ) from exc
            except aiohttp.ClientConnectionError as exc:
                if attempt >= self.options.max_retries:
                    raise UpstreamUnreachable(
                        f"Cannot reach provider '{self.name}' at {url} after {attempt + 1} attempt(s): {_describe(exc)}. "
                        f"Check that the model server is running and [providers.{self.name}] base_url is right."
                    ) from exc
            else:
                if resp.status == 200:
                    return resp
                message = await _error_text(resp)
                resp.close()
                if resp.status not in RETRY_STATUSES or attempt >= self.options.max_retries:
                    raise UpstreamError(resp.status, f"Provider '{self.name}' answered HTTP {resp.status}: {message}")
                wait = _retry_after(resp.headers.get("Retry-After")) or wait
            attempt += 1
            self._note_retry(attempt, url)
            await asyncio.sleep(min(wait, self.options.max_retry_wait_s))

    async def complete_text(self, model: str, prompt: str, *, suffix: str | None = None,
                            sampling: dict | None = None) -> ModelTurn | None:
        """One legacy ``POST {base_url}/completions`` call; None when the upstream has no such endpoint.

        Whether it has one is learnt on the first call: a 404, 405 or 501 is remembered for the
        provider's lifetime, and later calls return None at once (the caller builds a chat call).
        Retries are those of a chat call (connect errors, 429, 5xx).
        """
        if self._no_completions:
            return None
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False,
                                **{k: v for k, v in (sampling or {}).items() if v is not None}}
        if suffix:
            body["suffix"] = suffix
        try:
            resp = await self._open(body, "/completions")
        except UpstreamError as exc:
            if exc.upstream_status in (404, 405, 501):
                self._no_completions = True
                return None
            raise
        try:
            answer = await resp.json(content_type=None)
        except asyncio.TimeoutError as exc:
            raise UpstreamTimeout(f"Provider '{self.name}' stopped sending for {self.options.timeout_s:g}s "
                                  "mid-answer.") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise UpstreamError(502, f"Provider '{self.name}' sent a completion that is not JSON: {_describe(exc)}") from exc
        finally:
            resp.close()
        choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else None
        if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
            raise UpstreamError(502, f"Provider '{self.name}' sent a completion without choices[0].text.")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        model_name = answer.get("model")
        return ModelTurn(text=choice.get("text") or "", finish_reason=choice.get("finish_reason") or "stop",
                         usage=_usage(usage), response_model=model_name if isinstance(model_name, str) else "")

    def _note_retry(self, attempt: int, url: str) -> None:
        if self.host is not None:
            self.host.emit("agent.provider.retry", "warn", provider=self.name, attempt=attempt, url=url)

    async def _read(self, resp: aiohttp.ClientResponse) -> AsyncIterator[StreamItem]:
        text: list[str] = []
        reasoning: list[str] = []
        refusal: list[str] = []
        calls: dict[int, dict] = {}
        finish: str | None = None
        usage = Usage()
        response_model = ""
        done = False
        parser = SseParser(self.options.max_sse_line_bytes)
        try:
            async for received in resp.content.iter_any():
                for event in parser.feed(received):
                    if event.data == "[DONE]":
                        done = True
                        break
                    for chunk in self._chunks(event.data):
                        if isinstance(chunk.error, dict):
                            raise UpstreamError(502, f"Provider '{self.name}' failed mid-answer: "
                                                     f"{chunk.error.get('message', chunk.error)}")
                        if isinstance(chunk.usage, dict):
                            usage = _usage(chunk.usage)
                        if isinstance(chunk.model, str) and chunk.model:
                            response_model = chunk.model
                        for choice in chunk.choices or ():
                            delta = choice.delta
                            if delta is not None:
                                piece = delta.content
                                if piece:
                                    text.append(piece)
                                    yield TextDelta(text=piece)
                                if delta.refusal:
                                    refusal.append(delta.refusal)
                                thought = delta.reasoning_content or delta.reasoning
                                if isinstance(thought, str) and thought:
                                    reasoning.append(thought)
                                    yield ReasoningDelta(text=thought)
                                for tc in delta.tool_calls or ():
                                    _merge_tool_delta(calls, tc)
                            finish = choice.finish_reason or finish
                if done:
                    break
        except SseLineTooLong as exc:
            raise UpstreamError(502, f"Provider '{self.name}' sent a server-sent-events line longer than {exc.limit} "
                                     f"bytes; raise [providers.{self.name}] max_sse_line_bytes if its answers are "
                                     "that large.") from None
        except asyncio.TimeoutError as exc:
            raise UpstreamTimeout(f"Provider '{self.name}' stopped sending for {self.options.timeout_s:g}s mid-answer.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(502, f"Provider '{self.name}' broke off the answer: {_describe(exc)}") from exc
        if not done and finish is None:
            raise UpstreamError(502, f"Provider '{self.name}' closed the stream before the answer finished.")
        tool_calls = [
            ToolCall(id=c["id"] or f"call_{self.name}_{i}", function=FunctionCall(name=c["name"], arguments=c["arguments"]))
            for i, c in sorted(calls.items())
            if c["name"]
        ]
        if tool_calls and finish in (None, "stop"):
            finish = "tool_calls"  # some servers say "stop" even when they called tools
        yield ModelTurn(
            text="".join(text), reasoning="".join(reasoning), tool_calls=tool_calls,
            finish_reason=finish or "stop", usage=usage, refusal="".join(refusal), response_model=response_model,
        )

    def _chunks(self, data: str) -> list[_Chunk]:
        """The chat-completion chunks of one event's data; text that is not JSON is skipped, as before."""
        try:
            return [_CHUNK.decode(data)]
        except msgspec.ValidationError as exc:
            raise UpstreamError(502, f"Provider '{self.name}' sent a chunk that is not a chat completion "
                                     f"chunk ({exc}): {data[:200]}") from None
        except msgspec.DecodeError:
            if "\n" not in data:
                return []
        # Several data: lines without blank lines between them: a sloppy upstream's chunk per line.
        return [chunk for line in data.split("\n") for chunk in self._chunks(line)]


def _merge_tool_delta(calls: dict[int, dict], tc: _ToolCallDelta) -> None:
    index = tc.index if tc.index is not None else len(calls)
    entry = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if tc.id:
        entry["id"] = tc.id
    fn = tc.function
    if fn is not None and fn.name:
        entry["name"] += fn.name
    if fn is not None and fn.arguments:
        entry["arguments"] += fn.arguments


def _usage(raw: dict) -> Usage:
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=int(raw.get("total_tokens") or prompt + completion))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    try:
        raw = await resp.read()
    except aiohttp.ClientError:
        return resp.reason or ""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")[:500] or (resp.reason or "")
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return raw.decode(errors="replace")[:500]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def create(name: str, options: Any, host: Any = None) -> OpenAIProvider:
    """The ``bmo_providers`` factory for kind ``openai``."""
    if not isinstance(options, ProviderOptions):
        options = msgspec.convert(options, ProviderOptions)
    return OpenAIProvider(name, options, host)
