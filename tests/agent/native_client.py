"""A small client of the native session API for the agent tests (real HTTP, SSE parsed by hand)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp

from bmo.agent import coordinator_of
from bmo.streaming.sse_parser import iter_events
from bmo.testing.harness import RunningServer


class Native:
    """A small client of the native session API (real HTTP, SSE parsed by hand)."""

    def __init__(self, server: RunningServer, http: aiohttp.ClientSession):
        self.server = server
        self.http = http
        self.stopped = False

    @property
    def host(self):
        return self.server.host

    @property
    def co(self):
        return coordinator_of(self.server.host)

    async def stop(self) -> None:
        """Stop early (e.g. to restart on the same data dir); the fixture skips it afterwards."""
        if not self.stopped:
            self.stopped = True
            await self.http.close()
            await self.server.stop()

    def url(self, path: str) -> str:
        return self.server.api + path

    async def request(self, method: str, path: str, body: dict | None = None, status: int | None = None) -> dict:
        async with self.http.request(method, self.url(path), json=body, headers=self.server.headers()) as resp:
            data = await resp.json()
            if status is not None:
                assert resp.status == status, data
            return data

    async def create_session(self, **body) -> dict:
        return await self.request("POST", "/sessions", body, status=201)

    async def events(self, session_id: str, content: str | None = None, **body) -> AsyncIterator[dict]:
        """POST a message and yield the run's SSE events as dicts (``type`` and fields)."""
        if content is not None:
            body["content"] = content
        async with self.http.post(self.url(f"/sessions/{session_id}/messages"), json=body,
                                  headers=self.server.headers()) as resp:
            assert resp.status == 200, await resp.text()
            async for event in read_sse(resp):
                yield event

    async def run(self, session_id: str, content: str | None = None, **body) -> list[dict]:
        """POST a message and collect every event until run.finished."""
        out = []
        async with asyncio.timeout(30):
            async for event in self.events(session_id, content, **body):
                out.append(event)
        assert out and out[-1]["type"] == "run.finished", out
        return out

    async def decide(self, session_id: str, permission_id: str, decision: str) -> dict:
        return await self.request("POST", f"/sessions/{session_id}/permissions/{permission_id}",
                                  {"decision": decision}, status=200)


async def read_sse(resp: aiohttp.ClientResponse) -> AsyncIterator[dict]:
    async for event in iter_events(resp.content.iter_any()):
        data = json.loads(event.data)
        assert data["type"] == event.event
        yield data


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]
