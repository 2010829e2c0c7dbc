"""The TUI's HTTP client: the native session API, slash commands and sidebar, over aiohttp."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from bmo.streaming.sse_parser import iter_events


class BmoApiError(Exception):
    """An error answer from the server, with the envelope's message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class BmoClient:
    """One aiohttp session to one BMO server; ``close()`` it when done."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[: -len("/v1")]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # No total timeout: a run's stream may last as long as the agent works.
        self._http = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    async def close(self) -> None:
        await self._http.close()

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self._http.request(method, self.base_url + path, json=body) as resp:
            return await self._checked(resp)

    @staticmethod
    async def _checked(resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        if resp.status >= 400:
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text[:300]
            raise BmoApiError(resp.status, message)
        return json.loads(text) if text else None

    async def create_session(self, model: str | None = None) -> dict:
        return await self._json("POST", "/v1/sessions", {"model": model} if model else {})

    async def get_session(self, session_id: str) -> dict:
        return await self._json("GET", f"/v1/sessions/{session_id}")

    async def list_sessions(self) -> list[dict]:
        return (await self._json("GET", "/v1/sessions"))["data"]

    async def sidebar(self) -> list[dict]:
        return (await self._json("GET", "/v1/bmo/sidebar"))["data"]

    async def slash(self, command: str, width: int = 100) -> str:
        return (await self._json("POST", "/v1/bmo/slash", {"command": command, "width": width}))["text"]

    async def slash_commands(self) -> list[dict]:
        return (await self._json("GET", "/v1/bmo/slash"))["data"]

    async def decide(self, session_id: str, permission_id: str, decision: str) -> dict:
        return await self._json("POST", f"/v1/sessions/{session_id}/permissions/{permission_id}", {"decision": decision})

    async def cancel(self, session_id: str) -> dict:
        return await self._json("POST", f"/v1/sessions/{session_id}/cancel", {"reason": "cancelled from the TUI"})

    async def send(self, session_id: str, content: str,
                   on_run: Callable[[str], None] | None = None) -> AsyncIterator[dict]:
        """Post a user message and yield the run's events (dicts with ``type``) as they stream.

        ``on_run`` gets the run's id as soon as the server names it, before the first event.
        """
        async with self._http.post(
            f"{self.base_url}/v1/sessions/{session_id}/messages", json={"content": content, "stream": True}
        ) as resp:
            if resp.status >= 400:
                await self._checked(resp)
            if on_run is not None:
                on_run(resp.headers.get("X-BMO-Run-Id", ""))
            async for event in read_sse(resp.content):
                yield event

    async def follow(self, session_id: str) -> AsyncIterator[dict]:
        """Every run of the session, whoever started it (the active one from its start), until closed."""
        async with self._http.get(f"{self.base_url}/v1/sessions/{session_id}/events") as resp:
            if resp.status >= 400:
                await self._checked(resp)
            async for event in read_sse(resp.content):
                yield event


async def read_sse(stream: aiohttp.StreamReader) -> AsyncIterator[dict]:
    """The JSON payloads of a server-sent-event stream (``[DONE]`` left out); comments are skipped."""
    async for event in iter_events(stream.iter_any()):
        if event.data != "[DONE]":
            yield json.loads(event.data)
