"""A real BMO (compat + Open WebUI plugins) in front of a fake upstream that behaves like a model Open WebUI talks to."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bmo.streaming.sse_parser import SseParser
from bmo.testing.fake_upstream import FakeUpstream, Reply, echo_last_user, reply, tool_call
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

MODEL = "fake/fake-model"
TOKEN = "owui-test-token"
TITLE_JSON = '{ "title": "Weather Talk" }'


def _tool_names(body: dict) -> set[str]:
    return {(t.get("function") or {}).get("name", "") for t in body.get("tools") or []}


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def open_webui_like_upstream(body: dict) -> Reply:
    """The model's default behaviour in these tests: the router says "clear", a title task gets a
    title, "read my notes" makes it call BMO's read_file and then answer from the result, "take your
    time" pauses a second between pieces, a message asking to hang streams a little and then never
    finishes, anything else is echoed."""
    if "bmo_route" in _tool_names(body):
        return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return reply(f"The notes say: {str(messages[-1].get('content', '')).strip()}", chunks=2)
    text = _last_user_text(body)
    if text.startswith("### Task:"):
        return reply(TITLE_JSON)
    if "read my notes" in text:
        return reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"})])
    if "take your time" in text:
        return reply("slow but sure", chunks=3, chunk_delay_s=1.0)
    if "please hang" in text:
        return reply("thinking hard", chunks=2, stall=True)
    return echo_last_user(body)


def compat_toml(up: FakeUpstream, workspace: Path, *, extra: str = "", upstream_timeout_s: float = 5.0) -> str:
    return (
        "[options.openai_compat]\nenabled = true\ntool_policy = \"auto_approve\"\nambiguity_action = \"code\"\n"
        "keepalive_interval_s = 0.05\n\n"
        f"[agent]\ndefault_model = \"{MODEL}\"\nworkspace = \"{workspace}\"\nmax_steps = 6\n\n"
        + provider_toml(up, extra=f"timeout_s = {upstream_timeout_s}\nmax_retries = 0\n")
        + "\n" + extra
    )


async def serve(tmp_path: Path, up: FakeUpstream, workspace: Path, *, extra: str = "", env: dict | None = None,
                upstream_timeout_s: float = 5.0):
    """A real BMO with the compat and Open WebUI plugins, on a real socket, in this process."""
    return await start_server(
        tmp_path / "bmo", config_toml=compat_toml(up, workspace, extra=extra, upstream_timeout_s=upstream_timeout_s),
        token=TOKEN,
        load_plugins="openai_compat,open_webui", env=env,
    )


async def ledger_row(session, server, request_id: str, timeout: float = 10.0) -> dict:
    """The runs-list entry of ``request_id`` once its terminal outcome is written."""
    async with asyncio.timeout(timeout):
        while True:
            async with session.get(f"{server.api}/openai-compat/runs", params={"limit": "100"},
                                   headers=server.headers()) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            for row in page["data"]:
                if row["request_id"] == request_id and row["outcome"]:
                    return row
            await asyncio.sleep(0.05)


def sse_events(raw: str) -> list[dict]:
    """The JSON payloads of an SSE body's ``data:`` events (``[DONE]`` left out)."""
    return [json.loads(e.data) for e in SseParser().feed(raw.encode()) if e.data != "[DONE]"]
