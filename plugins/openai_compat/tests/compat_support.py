"""Helpers for the openai_compat tests: the scripted fake model, config, and the running-server wrapper."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path

import openai

from bmo.testing.fake_upstream import FakeUpstream, Reply, echo_last_user, reply, tool_call
from bmo.testing.fixtures import provider_toml

MODEL = "fake/fake-model"
OTHER_MODEL = "fake/other-model"
TOKEN = "test-token"


def route_reply(decision: str = "clear", question: str = "") -> Reply:
    """What the fake model answers to the bmo_route router call."""
    return reply(tool_calls=[tool_call("bmo_route", {"decision": decision, "question": question})])


def is_router_call(body: dict) -> bool:
    return any((t.get("function") or {}).get("name") == "bmo_route" for t in body.get("tools") or [])


class ScriptedModel:
    """The fake upstream's behaviour: router calls take ``routes`` (default "clear"), chat calls take ``answers``
    (default: echo the last user message). Keeping the two apart lets a test script answers without caring
    whether the router runs first."""

    def __init__(self) -> None:
        self.routes: deque[Reply] = deque()
        self.answers: deque[Reply] = deque()
        self.router_calls = 0

    def __call__(self, body: dict) -> Reply:
        if is_router_call(body):
            self.router_calls += 1
            return self.routes.popleft() if self.routes else route_reply()
        return self.answers.popleft() if self.answers else echo_last_user(body)

    def answer(self, *replies: Reply) -> "ScriptedModel":
        self.answers.extend(replies)
        return self

    def route(self, *replies: Reply) -> "ScriptedModel":
        self.routes.extend(replies)
        return self


async def open_stream_until(compat, http, marker: bytes):
    """POST a streaming chat whose scripted answer stalls; return (response, request_id) once ``marker`` arrived."""
    response = await http.post(
        compat.api + "/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hang"}], "stream": True})
    seen = b""
    async with asyncio.timeout(10):
        while marker not in seen:
            seen += await response.content.readany()
    return response, response.headers["X-Request-Id"]


def compat_toml(up: FakeUpstream, workspace: Path, extra_toml: str = "", **options) -> str:
    settings = {"enabled": True, "keepalive_interval_s": 0.2, **options}
    lines = ["[options.openai_compat]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    return (
        "\n".join(lines) + "\n\n"
        f"[agent]\ndefault_model = \"{MODEL}\"\nworkspace = \"{workspace}\"\nmax_steps = 6\n"
        "permission_timeout_s = 2.0\n\n"
        + provider_toml(up, extra="timeout_s = 10.0\nmax_retries = 0\n")
        + "\n" + extra_toml
    )


class Compat:
    """A running BMO (only this plugin loaded) in front of a fake model, with ledger and record readers."""

    def __init__(self, server, up: FakeUpstream, model: ScriptedModel, workspace: Path):
        self.server = server
        self.up = up
        self.model = model
        self.workspace = workspace

    @property
    def host(self):
        return self.server.host

    @property
    def api(self) -> str:
        return self.server.api

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.api, api_key=kwargs.pop("api_key", TOKEN),
                             _strict_response_validation=True, timeout=kwargs.pop("timeout", 20), **kwargs)

    def aclient(self, **kwargs) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.api, api_key=kwargs.pop("api_key", TOKEN),
                                  _strict_response_validation=True, timeout=kwargs.pop("timeout", 20), **kwargs)

    @property
    def ledger(self):
        return self.host.state["openai_compat"].ledger

    async def row(self, request_id: str) -> dict | None:
        await self.ledger.drain()
        return await self.ledger.get_run(request_id)

    async def timeline(self, request_id: str) -> list[dict]:
        await self.ledger.drain()
        return await self.ledger.events(request_id)

    async def records(self, msg: str | None = None, **where) -> list[dict]:
        await asyncio.to_thread(self.host.records.flush)
        out = []
        for line in self.host.records.path.read_text().splitlines():
            record = json.loads(line)
            if msg is not None and record.get("msg") != msg:
                continue
            if all(record.get(k) == v for k, v in where.items()):
                out.append(record)
        return out

    async def assert_outcome(self, request_id: str, outcome: str, status: int, level: str = "info") -> dict:
        """Row, timeline and the two records of one request all tell the same ending; returns the action record."""
        row = await self.row(request_id)
        assert row is not None, f"no ledger row for {request_id}"
        assert (row["outcome"], row["http_status"], row["status"]) == (outcome, status, "finished")
        events = await self.timeline(request_id)
        assert events[0]["event"] == "received"
        assert events[-1]["terminal"] and events[-1]["outcome"] == outcome
        assert sum(e["terminal"] for e in events) == 1
        fired = await self.records("openai_compat.fired", request_id=request_id)
        action = await self.records("openai_compat.action", request_id=request_id)
        assert len(fired) == 1 and len(action) == 1, (fired, action)
        assert action[0]["outcome"] == outcome and action[0]["status"] == status
        assert action[0]["level"] == level
        assert fired[0]["route"] == action[0]["route"] == row["route"]
        return action[0]
