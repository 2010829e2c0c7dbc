"""Helpers: scripting the model to call the Kubernetes tools, and reading the ledger and records of a request."""

from __future__ import annotations

import asyncio
import json

from openai import AsyncOpenAI

from bmo.testing.fake_upstream import reply, tool_call

MODEL = "fake/fake-model"
# Fast retries: the tests count attempts, they do not wait for production delays.
RETRIES = {"max_attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "retry_budget_s": 5,
           "request_timeout_s": 2}
ROUTE_CLEAR = reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])


def calls(*pairs: tuple[str, dict]):
    """One model turn calling each (tool, arguments)."""
    return reply(tool_calls=[tool_call(name, args) for name, args in pairs])


def tool_results(request) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "tool"]


async def ask(server, question: str, **kwargs):
    sdk = AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
    try:
        return await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": question}], **kwargs)
    finally:
        await sdk.close()


async def ledger_row(server, request_id: str) -> dict:
    ledger = server.host.state["openai_compat"].ledger
    await ledger.drain()
    return await ledger.get_run(request_id)


async def records(server, msg: str, **where) -> list[dict]:
    await asyncio.to_thread(server.host.records.flush)
    out = []
    for line in server.host.records.path.read_text().splitlines():
        record = json.loads(line)
        if record.get("msg") == msg and all(record.get(k) == v for k, v in where.items()):
            out.append(record)
    return out
