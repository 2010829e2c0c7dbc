"""``kind = "llamacpp"``: BMO starts llama.cpp's server on a GGUF file in a child process and speaks ``openai`` to it.

A child process, not in-process bindings: a native crash or a runaway generation cannot take
the BMO server down, inference threads never contend with the event loop, stopping it frees
all of the model's memory, and streaming, usage and cancellation (closing the connection
stops the generation) are exactly those of the ``openai`` kind, which it reuses.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from bmo.agent.config import ProviderOptions
from bmo.agent.errors import UpstreamUnreachable
from bmo.agent.messages import ChatMessage
from bmo.agent.providers.base import StreamItem
from bmo.agent.providers import text_tool_calls
from bmo.agent.providers.llamacpp import file_hints, model_file, tool_rounds
from bmo.agent.providers.openai import OpenAIProvider

KIND = "llamacpp"


class LlamaCppProvider(OpenAIProvider):
    """One ``[providers.NAME]`` table of kind ``llamacpp``; the model server starts in :meth:`discover`."""

    TEXT_TOOL_CALLS_DEFAULT = True  # small local models often write a tool call as JSON text
    # Measured: asked "What is 2+3?" it calls a made-up "add"; as a call, the loop says there is none and the
    # next round (no tools, past tool_rounds) answers. As text, that JSON was the answer.
    TEXT_TOOL_CALLS_ANY_NAME = True
    # Measured on Qwen2.5-Coder-0.5B (docs/local-model.md): offered all ten tools it calls some even for arithmetic.
    TOOLS_DEFAULT = ["read_file", "list_dir", "search_files"]
    # llama.cpp samples at 0.8 by default; a 0.5B model then answers one question differently each time.
    TEMPERATURE_DEFAULT = 0.0
    # Measured: asked by the router, the 0.5B model called 4 of 5 arithmetic questions ambiguous and asked them back.
    AMBIGUITY_ROUTER_DEFAULT = False

    def __init__(self, name: str, options: ProviderOptions, host: Any = None):
        if not (options.model_path or (options.repo and options.file)):
            model_file.resolve(name, options)  # raises the ValueError that says what to set
        if options.context_size < 256:
            raise ValueError(f"[providers.{name}] context_size must be 256 or more, got {options.context_size}")
        if options.tool_rounds < 0:
            raise ValueError(f"[providers.{name}] tool_rounds must be 0 (no limit) or more, got {options.tool_rounds}")
        # The real address is known once the child listens; until then nothing may be sent.
        super().__init__(name, msgspec.structs.replace(options, base_url="http://127.0.0.1:9/v1"), host)
        self.alias = options.models[0] if options.models else Path(options.model_path or options.file).stem
        self.models = []  # empty until the model is loaded: discovery starts it
        self.proc: asyncio.subprocess.Process | None = None
        self.model_path = ""
        self.load_s: float | None = None
        self.error = ""

    def threads(self) -> int:
        return self.options.threads or len(os.sched_getaffinity(0))

    async def discover(self) -> list[str]:
        """Start the model server (once) and serve its model as ``NAME/<alias>``."""
        if self.proc is None:
            try:
                await self._start()
            except Exception as exc:
                self.error = str(exc)
                raise
        return self.models

    def stream(self, model: str, messages: list[ChatMessage], *, tools: list[dict] | None = None,
               tool_choice: object = None, **kw: Any) -> AsyncIterator[StreamItem]:
        """The ``openai`` stream; past ``tool_rounds`` in this turn or under ``tool_choice="none"``, without
        tools and with earlier calls as text."""
        limit = self.options.tool_rounds
        rounds = tool_rounds.rounds_since_user(messages)
        # "none": a small model shown tools (or its earlier calls as tool blocks) calls them anyway.
        if tools and (tool_choice == "none" or (limit and rounds >= limit)):
            tools, tool_choice, messages = None, None, tool_rounds.as_text(messages)
        elif rounds == 0 and "read_file" in text_tool_calls.offered_names(tools):
            return self._hinted(model, messages, tools, tool_choice, kw)
        return super().stream(model, messages, tools=tools, tool_choice=tool_choice, **kw)

    async def _hinted(self, model: str, messages: list[ChatMessage], tools: list[dict], tool_choice: object,
                      kw: dict) -> AsyncIterator[StreamItem]:
        """The turn's first model call, told which workspace files the request names (see file_hints)."""
        # [agent] workspace, as the file tools resolve it (read here, not through the coordinator above us).
        workspace = Path(self.host.config.section("agent").workspace).expanduser() if self.host is not None else None
        messages = await file_hints.with_file_hints(messages, workspace)
        async for item in super().stream(model, messages, tools=tools, tool_choice=tool_choice, **kw):
            yield item

    async def _start(self) -> None:
        path = await asyncio.to_thread(model_file.resolve, self.name, self.options)
        self.model_path = str(path)
        env = {**os.environ}
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads would eat the shared cores
        log = self._log_file()
        started = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bmo.agent.providers.llamacpp.child", "--model", self.model_path,
            "--alias", self.alias, "--context-size", str(self.options.context_size), "--threads", str(self.threads()),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
        )
        if log is not asyncio.subprocess.DEVNULL:
            log.close()  # the child holds its own descriptor
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.options.start_timeout_s)
        except asyncio.TimeoutError:
            await self.close()
            raise UpstreamUnreachable(f"Provider '{self.name}' did not load {self.model_path} within "
                                      f"{self.options.start_timeout_s:g}s ([providers.{self.name}] start_timeout_s)") from None
        try:
            ready = json.loads(line or b"{}")
        except ValueError:
            ready = {}
        if "url" not in ready:
            await self.close()
            why = ready.get("error") or "the model server exited while loading (see its log: " \
                                        f"{self._log_path() or 'not kept'})"
            raise UpstreamUnreachable(f"Provider '{self.name}' cannot serve {self.model_path}: {why}")
        self.load_s = round(time.monotonic() - started, 3)
        self.base_url = ready["url"].rstrip("/") + "/v1"
        self.models = [self.alias]

    def _log_path(self) -> Path | None:
        data_dir = getattr(self.host, "data_dir", None)
        return Path(data_dir) / "logs" / f"llamacpp-{self.name}.log" if data_dir else None

    def _log_file(self):
        path = self._log_path()
        if path is None:
            return asyncio.subprocess.DEVNULL
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")

    def rss_bytes(self) -> int | None:
        """The model server's resident memory, from /proc (None when not running or not Linux)."""
        if self.proc is None or self.proc.returncode is not None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def posture(self) -> dict:
        running = self.proc is not None and self.proc.returncode is None
        return {"model_path": self.model_path or self.options.model_path, "model": f"{self.name}/{self.alias}",
                "state": "running" if running else ("failed" if self.error else "stopped"),
                "error": self.error, "load_s": self.load_s, "rss_bytes": self.rss_bytes(),
                "context_size": self.options.context_size, "threads": self.threads(),
                "text_tool_calls": self.text_tool_calls, "tools": self.offered_tools,
                "tool_rounds": self.options.tool_rounds, "temperature": self.temperature,
                "ambiguity_router": self.ambiguity_router,
                "pid": self.proc.pid if running else None}

    async def close(self) -> None:
        await super().close()
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


def posture_for(host: Any) -> dict:
    """The posture's ``local_models`` section: each llamacpp provider's state, load time and memory."""
    from bmo.agent import maybe_coordinator

    coordinator = maybe_coordinator(host)
    providers = coordinator.providers.values() if coordinator is not None else ()
    return {p.name: p.posture() for p in providers if isinstance(p, LlamaCppProvider)}


def create(name: str, options: Any, host: Any = None) -> LlamaCppProvider:
    """The ``bmo_providers`` factory for kind ``llamacpp``."""
    if not isinstance(options, ProviderOptions):
        options = msgspec.convert(options, ProviderOptions)
    return LlamaCppProvider(name, options, host)
