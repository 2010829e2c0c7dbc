"""kill -9 at random moments under mixed load, 20 times: each restart finds a sound database with every
acknowledged answer in the ledger, nothing left running or without an outcome, and no process alive.

The load: streaming and non-streaming chat, durable sessions and ephemeral ones, and ``run_shell``
tool calls under ``tool_policy = "auto_approve"`` (sandboxed commands carrying a marker)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal

import apsw
import msgspec
import openai
import pytest_asyncio

from bmo.agent.messages import ChatMessage
from bmo.testing.fake_upstream import FakeUpstream, reply, tool_call
from bmo.testing.harness import spawn_serve
from tests.agent.sandbox_support import (  # noqa: F401 - bwrap_required, marker are fixtures
    MODEL,
    PROVIDER_KEY,
    alive_with,
    bwrap_required,
    compat_config,
    kill_marked,
    marker,
    new_marker,
    require_bwrap,
    wait_gone,
)

TOKEN = "kill9-token"
CYCLES = int(os.environ.get("BMO_TEST_KILL9_CYCLES", "20"))
WORKERS = 6


class MixedModel:
    """Router: clear. "tool ..." turns call run_shell with a marked sleep; others stream text slowly."""

    def __init__(self, marker: str):
        self.marker = marker
        self.ids = itertools.count()

    def __call__(self, body: dict):
        if any((t.get("function") or {}).get("name") == "bmo_route" for t in body.get("tools") or []):
            return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
        last = body["messages"][-1]
        if last.get("role") == "tool":
            return reply("the command said ok", chunks=4, chunk_delay_s=0.02)
        if str(last.get("content", "")).startswith("tool"):
            command = f"sleep 0.{self.marker} ; sleep 1.{self.marker} & echo ok"
            return reply(tool_calls=[tool_call("run_shell", {"command": command}, id=f"k{next(self.ids)}")])
        return reply("a slowly streamed answer, word by word", chunks=8, chunk_delay_s=0.03)


@pytest_asyncio.fixture
async def upstream(marker):
    up = await FakeUpstream(default=MixedModel(marker)).start()
    yield up
    await up.stop()


class Load:
    """Client workers; ``acked`` holds the request ids whose complete answer reached the client."""

    def __init__(self, url: str, worker_sessions: list[list[str]]):
        self.client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=TOKEN, timeout=30, max_retries=0)
        self.sessions = worker_sessions
        self.acked: list[str] = []
        self.statuses: list[int] = []  # HTTP errors with a status: never expected
        self.rng = random.Random()

    async def one(self, worker: int) -> None:
        text = ("tool: run it" if self.rng.random() < 0.4 else "tell me something")
        headers = {}
        if self.rng.random() < 0.6:
            headers["X-BMO-Session-Id"] = self.rng.choice(self.sessions[worker])
        kwargs = {"model": MODEL, "messages": [{"role": "user", "content": text}], "extra_headers": headers}
        try:
            if self.rng.random() < 0.5:
                async with self.client.chat.completions.with_streaming_response.create(stream=True, **kwargs) as r:
                    request_id = r.headers["x-request-id"]
                    finished = False
                    async for chunk in await r.parse():
                        finished = finished or any(c.finish_reason for c in chunk.choices)
                    if finished:
                        self.acked.append(request_id)
            else:
                raw = await self.client.chat.completions.with_raw_response.create(**kwargs)
                raw.parse()
                self.acked.append(raw.headers["x-request-id"])
        except openai.APIStatusError as exc:
            self.statuses.append(exc.status_code)
        except (openai.APIConnectionError, openai.APITimeoutError):
            pass  # the kill cut it off: not acknowledged

    async def worker(self, worker: int) -> None:
        while True:
            await self.one(worker)


def check_store(db_path, acked: list[str]) -> dict[str, int]:
    """The restart's checks, on a connection of our own; the counts of rows checked."""
    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        running = conn.execute("SELECT COUNT(*) FROM openai_compat_runs WHERE status = 'running'").fetchall()[0][0]
        open_runs = conn.execute("SELECT COUNT(*) FROM runs WHERE outcome IS NULL").fetchall()[0][0]
        assert (running, open_runs) == (0, 0)
        rows = dict(conn.execute("SELECT request_id, status FROM openai_compat_runs").fetchall())
        missing = [rid for rid in acked if rows.get(rid) != "finished"]
        assert missing == [], f"acknowledged but not finished in the ledger: {missing[:5]}"
        answered, calls, messages = set(), [], 0
        for role, body in conn.execute("SELECT role, message FROM session_messages"):
            message = msgspec.json.decode(body, type=ChatMessage)
            messages += 1
            if role == "tool":
                answered.add(message.tool_call_id)
            calls += [c.id for c in message.tool_calls or []]
        assert [c for c in calls if c not in answered] == []  # every stored tool call has its result
        interrupted = conn.execute("SELECT COUNT(*) FROM openai_compat_runs WHERE status = 'interrupted'"
                                   ).fetchall()[0][0]
        return {"ledger_rows": len(rows), "runs": conn.execute("SELECT COUNT(*) FROM runs").fetchall()[0][0],
                "messages": messages, "interrupted": interrupted}
    finally:
        conn.close()


def serve(tmp_path):
    return spawn_serve(["--config", str(tmp_path / "bmo.toml"), "--addr", "127.0.0.1:0"],
                       data_dir=tmp_path / "data",
                       env={"BMO_LOAD_PLUGINS": "openai_compat", "BMO_AUTH_TOKEN": TOKEN,
                            "FAKE_PROVIDER_KEY": PROVIDER_KEY})


async def test_kill_9_at_random_moments_leaves_nothing_running_unexplained_or_alive(tmp_path, upstream, marker):
    (tmp_path / "ws").mkdir()
    (tmp_path / "bmo.toml").write_text(compat_config(upstream, tmp_path / "ws"))
    sessions = [[f"kill9-w{w}-s{s}" for s in range(2)] for w in range(WORKERS)]
    rng = random.Random()
    acked: list[str] = []
    figures = {"kills": 0, "acked": 0, "commands_alive_at_kill": 0}
    for _ in range(CYCLES):
        server = await asyncio.to_thread(serve, tmp_path)
        try:
            assert server.url, server.stderr()
            figures.update(check_store(tmp_path / "data" / "bmo.sqlite3", acked))  # what the last crash left
            load = Load(server.url, sessions)
            workers = [asyncio.ensure_future(load.worker(w)) for w in range(WORKERS)]
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            figures["commands_alive_at_kill"] += len(alive_with(marker))
            server.proc.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(server.proc.wait, 30) == -signal.SIGKILL
            figures["kills"] += 1
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await load.client.close()
            assert load.statuses == [], server.stderr()
            acked += load.acked
            assert await wait_gone(marker) == [], "a command BMO started outlived the kill"
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)
    server = await asyncio.to_thread(serve, tmp_path)
    try:
        assert server.url, server.stderr()
        figures.update(check_store(tmp_path / "data" / "bmo.sqlite3", acked))
    finally:
        assert server.terminate() == 0
    figures["acked"] = len(acked)
    print(f"\nkill -9 figures: {figures}")
    assert figures["acked"] > CYCLES  # the load really ran: answers were acknowledged between kills
    assert figures["commands_alive_at_kill"] > 0  # kills did land while sandboxed commands ran
    assert not alive_with(marker)
