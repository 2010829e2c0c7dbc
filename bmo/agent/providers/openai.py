"""The ``openai`` provider kind: any OpenAI-compatible upstream, spoken to with aiohttp.

Every call streams, so text reaches the caller as the upstream produces it; a
non-streaming caller simply collects. Connect errors, 429 and 5xx are retried only
before the first byte of a successful answer: after that a retry could duplicate text.
Each answer is bounded in total time and size (:mod:`.answer_bounds`); failures say what a
client may read and keep the rest in ``detail`` (:mod:`.faults`).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from bmo.agent.config import ProviderOptions
from bmo.agent.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from bmo.agent.events import ReasoningDelta, TextDelta
from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall, Usage
from bmo.agent.providers import text_tool_calls
from bmo.agent.providers.answer_bounds import AnswerBounds
from bmo.agent.providers.base import ModelTurn, StreamItem
from bmo.agent.providers.chat_chunks import CHUNK_DECODER as _CHUNK
from bmo.agent.providers.chat_chunks import Chunk as _Chunk
from bmo.agent.providers.chat_chunks import merge_tool_delta, usage_of
from bmo.agent.providers.faults import describe, error_text, network_failure
from bmo.streaming.sse_parser import SseLineTooLong, SseParser

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_ENCODE = msgspec.json.Encoder().encode
# Parsed or built once per value, not per model call (aiohttp would parse the URL string every time).
_url = functools.lru_cache(maxsize=64)(URL)


@functools.lru_cache(maxsize=16)
def _client_timeout(t: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=min(t, 15.0), sock_read=t)


class OpenAIProvider:
    """One ``[providers.NAME]`` table of kind ``openai``."""

    TEXT_TOOL_CALLS_DEFAULT = False  # a hosted API calls tools properly; small local models may not
    TEXT_TOOL_CALLS_ANY_NAME = False  # a text call to a tool that was not offered stays text
    TOOLS_DEFAULT: list[str] | None = None  # every BMO tool the run's policy offers
    TEMPERATURE_DEFAULT: float | None = None  # the upstream's own
    AMBIGUITY_ROUTER_DEFAULT = True

    def __init__(self, name: str, options: ProviderOptions, host: Any = None):
        if not options.base_url:
            raise ValueError(f'[providers.{name}] needs base_url, e.g. base_url = "http://127.0.0.1:8080/v1"')
        self.name = name
        self.options = options
        self.host = host
        self.base_url = options.base_url.rstrip("/")
        if options.max_sse_line_bytes < 1:
            raise ValueError(f"[providers.{name}] max_sse_line_bytes must be 1 or more, got {options.max_sse_line_bytes}")
        if options.max_answer_s <= 0 or options.max_answer_bytes < 1:
            raise ValueError(f"[providers.{name}] max_answer_s and max_answer_bytes must be positive, got "
                             f"{options.max_answer_s:g} and {options.max_answer_bytes}")
        if options.max_connections < 0:
            raise ValueError(f"[providers.{name}] max_connections must be 0 (no limit) or more, "
                             f"got {options.max_connections}")
        self.models: list[str] = list(options.models)
        self._session: aiohttp.ClientSession | None = None
        self._no_completions = False  # learnt: the upstream has no legacy /completions endpoint
        wanted = options.text_tool_calls
        self.text_tool_calls = self.TEXT_TOOL_CALLS_DEFAULT if wanted is None else wanted
        self.offered_tools = self.TOOLS_DEFAULT if options.tools is None else list(options.tools)
        self.temperature = self.TEMPERATURE_DEFAULT if options.temperature is None else options.temperature
        wanted = options.ambiguity_router
        self.ambiguity_router = self.AMBIGUITY_ROUTER_DEFAULT if wanted is None else wanted

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
                    public, full = await error_text(resp)
                    raise UpstreamError(resp.status, f"Provider '{self.name}' answered HTTP {resp.status} to its model "
                                                     f"list{': ' + public if public else ''}",
                                        detail=f"GET {url} answered {resp.status}: {full}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UpstreamUnreachable(f"Cannot list models of provider '{self.name}': {network_failure(exc)}.",
                                      detail=f"GET {url}: {describe(exc)}") from exc
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
        if self.temperature is not None:
            body["temperature"] = self.temperature  # a client's own temperature (below) wins
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
        bounds = AnswerBounds(self.name, self.options.max_answer_s, self.options.max_answer_bytes)
        try:
            resp = await self._open_bounded(body, bounds)
            items = self._read(resp, bounds)
            if self.text_tool_calls:
                items = text_tool_calls.recognise(items, tools, tool_choice, self.TEXT_TOOL_CALLS_ANY_NAME)
            try:
                async for item in items:
                    yield item
            finally:
                # Closing (not releasing) drops the connection, so the upstream sees us leave mid-answer.
                resp.close()
        finally:
            bounds.close()

    async def _open_bounded(self, body: dict, bounds: AnswerBounds, path: str = "/chat/completions"):
        """``_open`` within the answer's time bound (retries included), the response then watched by it."""
        try:
            async with asyncio.timeout_at(bounds.deadline):
                resp = await self._open(body, path)
        except TimeoutError:
            raise bounds.timed_out() from None
        bounds.watch(resp)
        return resp

    async def _open(self, body: dict, path: str = "/chat/completions") -> aiohttp.ClientResponse:
        url = f"{self.base_url}{path}"
        payload = _ENCODE(body)
        attempt = 0
        while True:
            wait = self.options.retry_backoff_s * (2 ** attempt)
            try:
                resp = await self._http().post(_url(url), data=payload, headers=self._headers(),
                                               timeout=_client_timeout(self.options.timeout_s))
            except asyncio.TimeoutError as exc:
                if isinstance(exc, aiohttp.ConnectionTimeoutError) and attempt < self.options.max_retries:
                    attempt += 1
                    await asyncio.sleep(min(wait, self.options.max_retry_wait_s))
                    continue
                raise UpstreamTimeout(
                    f"Provider '{self.name}' did not answer within {self.options.timeout_s:g}s "
                    f"([providers.{self.name}] timeout_s).", detail=f"POST {url}: {describe(exc)}"
                ) from exc
            except aiohttp.ClientConnectionError as exc:
                if attempt >= self.options.max_retries:
                    raise UpstreamUnreachable(
                        f"Cannot reach provider '{self.name}' after {attempt + 1} attempt(s): {network_failure(exc)}. "
                        f"Check that the model server is running and [providers.{self.name}] base_url is right.",
                        detail=f"POST {url} after {attempt + 1} attempt(s): {describe(exc)}",
                    ) from exc
            else:
                if resp.status == 200:
                    return resp
                public, full = await error_text(resp)
                resp.close()
                if resp.status not in RETRY_STATUSES or attempt >= self.options.max_retries:
                    kind = f": {public}" if public else (" (a server error on its side)" if resp.status >= 500 else "")
                    raise UpstreamError(resp.status, f"Provider '{self.name}' answered HTTP {resp.status}{kind}",
                                        detail=f"POST {url} answered HTTP {resp.status}: {full}")
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
        bounds = AnswerBounds(self.name, self.options.max_answer_s, self.options.max_answer_bytes)
        try:
            try:
                resp = await self._open_bounded(body, bounds, "/completions")
            except UpstreamError as exc:
                if exc.upstream_status in (404, 405, 501):
                    self._no_completions = True
                    return None
                raise
            try:
                answer = msgspec.json.decode(await self._read_body(resp, bounds))
            except msgspec.DecodeError as exc:
                raise UpstreamError(502, f"Provider '{self.name}' sent a completion that is not JSON.",
                                    detail=describe(exc), code="upstream_bad_answer") from None
            finally:
                resp.close()
        finally:
            bounds.close()
        choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else None
        if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
            raise UpstreamError(502, f"Provider '{self.name}' sent a completion without choices[0].text.",
                                code="upstream_bad_answer")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        model_name = answer.get("model")
        return ModelTurn(text=choice.get("text") or "", finish_reason=choice.get("finish_reason") or "stop",
                         usage=usage_of(usage), response_model=model_name if isinstance(model_name, str) else "")

    async def _read_body(self, resp: aiohttp.ClientResponse, bounds: AnswerBounds) -> bytes:
        """A whole (non-streamed) answer body, within the bounds."""
        parts: list[bytes] = []
        try:
            async for received in resp.content.iter_any():
                bounds.count(len(received))
                parts.append(received)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._broken(exc, bounds) from exc
        if bounds.expired:
            raise bounds.timed_out()
        return b"".join(parts)

    def _broken(self, exc: BaseException, bounds: AnswerBounds) -> Exception:
        """The error for a read that failed mid-answer: the time bound, silence, or a broken connection."""
        if bounds.expired:
            return bounds.timed_out()
        if isinstance(exc, asyncio.TimeoutError):
            return UpstreamTimeout(f"Provider '{self.name}' stopped sending for {self.options.timeout_s:g}s "
                                   f"mid-answer ([providers.{self.name}] timeout_s).", detail=describe(exc))
        return UpstreamError(502, f"Provider '{self.name}' broke off the answer: {network_failure(exc)}.",
                             detail=f"provider {self.name}: {describe(exc)}")

    def _note_retry(self, attempt: int, url: str) -> None:
        if self.host is not None:
            self.host.emit("agent.provider.retry", "warn", provider=self.name, attempt=attempt, url=url)

    async def _read(self, resp: aiohttp.ClientResponse, bounds: AnswerBounds) -> AsyncIterator[StreamItem]:
        text: list[str] = []
        reasoning: list[str] = []
        refusal: list[str] = []
        calls: dict[int, dict] = {}
        finish: str | None = None
        usage = Usage()
        response_model = ""
        done = False
        unparsed: list[str] = []  # data lines that are not JSON (the first few, for the detail)
        unparsed_count = 0
        parser = SseParser(self.options.max_sse_line_bytes)
        try:
            async for received in resp.content.iter_any():
                bounds.count(len(received))
                for event in parser.feed(received):
                    if event.data == "[DONE]":
                        done = True
                        break
                    chunks = self._chunks(event.data)
                    if not chunks and event.data.strip():
                        unparsed_count += 1
                        if len(unparsed) < 3:
                            unparsed.append(event.data[:200])
                    for chunk in chunks:
                        if isinstance(chunk.error, dict):
                            raise UpstreamError(502, f"Provider '{self.name}' reported an error mid-answer.",
                                                detail=f"provider {self.name} sent an error event: "
                                                       f"{str(chunk.error.get('message', chunk.error))[:2000]}")
                        if isinstance(chunk.usage, dict):
                            usage = usage_of(chunk.usage)
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
                                    merge_tool_delta(calls, tc)
                            finish = choice.finish_reason or finish
                if done:
                    break
        except SseLineTooLong as exc:
            raise UpstreamError(502, f"Provider '{self.name}' sent a server-sent-events line longer than {exc.limit} "
                                     f"bytes; raise [providers.{self.name}] max_sse_line_bytes if its answers are "
                                     "that large.", code="upstream_bad_stream") from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise self._broken(exc, bounds) from exc
        if bounds.expired:  # the timer closed the response: the read ended early, not the answer
            raise bounds.timed_out()
        if finish is None:
            raise self._unfinished(done, unparsed_count, unparsed)
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

    def _unfinished(self, done: bool, unparsed_count: int, unparsed: list[str]) -> UpstreamError:
        """A stream that ended without any ``finish_reason``: cut off, or not a chat-completion stream at all."""
        if unparsed_count:
            public = (f"Provider '{self.name}' sent a stream that is not chat-completion chunks "
                      f"({unparsed_count} data line(s) are not JSON).")
        elif done:
            public = f"Provider '{self.name}' ended its stream without a finish_reason."
        else:
            public = f"Provider '{self.name}' closed the stream before the answer finished."
        seen = f"; data lines that are not JSON: {unparsed!r}" if unparsed else ""
        return UpstreamError(502, public, detail=f"provider {self.name}: [DONE] {'seen' if done else 'not seen'}, "
                                                 f"no finish_reason{seen}", code="upstream_bad_stream")

    def _chunks(self, data: str) -> list[_Chunk]:
        """The chat-completion chunks of one event's data; text that is not JSON is skipped (and counted)."""
        try:
            return [_CHUNK.decode(data)]
        except msgspec.ValidationError as exc:
            raise UpstreamError(502, f"Provider '{self.name}' sent a chunk that is not a chat completion "
                                     f"chunk ({exc}).", detail=f"provider {self.name}: {exc}: {data[:200]}",
                                code="upstream_bad_stream") from None
        except msgspec.DecodeError:
            if "\n" not in data:
                return []
        # Several data: lines without blank lines between them: a sloppy upstream's chunk per line.
        return [chunk for line in data.split("\n") for chunk in self._chunks(line)]


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


def create(name: str, options: Any, host: Any = None) -> OpenAIProvider:
    """The ``bmo_providers`` factory for kind ``openai``."""
    if not isinstance(options, ProviderOptions):
        options = msgspec.convert(options, ProviderOptions)
    return OpenAIProvider(name, options, host)
