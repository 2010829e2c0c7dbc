"""End to end with the real Open WebUI (PyPI ``open-webui``) in front of a real ``bmo serve``.

Opt-in: Open WebUI takes minutes and gigabytes to install. ``examples/open_webui/run_e2e.sh``
installs it into ``examples/open_webui/.venv`` and runs this with ``BMO_E2E_OPEN_WEBUI=1``.
Only the model behind BMO is fake (the scriptable upstream); every hop between is real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from owui_server import MODEL, TITLE_JSON, open_webui_like_upstream

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import free_port, spawn_serve

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "open_webui"
VENV = Path(os.environ.get("OPEN_WEBUI_VENV", EXAMPLE / ".venv"))
TOKEN = "e2e-bmo-token"
START_TIMEOUT_S = float(os.environ.get("OPEN_WEBUI_START_TIMEOUT_S", "240"))

pytestmark = [
    pytest.mark.open_webui_e2e,
    pytest.mark.skipif(os.environ.get("BMO_E2E_OPEN_WEBUI") != "1",
                       reason="opt-in: set BMO_E2E_OPEN_WEBUI=1 (examples/open_webui/run_e2e.sh does)"),
]


def _open_webui_user_agent() -> str:
    """The User-Agent Open WebUI's aiohttp client sends (its Python and aiohttp versions)."""
    code = "import sys, aiohttp; print(f'Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}')"
    return subprocess.run([str(VENV / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


async def _wait_http_ok(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"Open WebUI exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"Open WebUI not up within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def _bmo_runs(http: aiohttp.ClientSession, bmo_url: str, **filters: str) -> list[dict]:
    async with http.get(f"{bmo_url}/v1/openai-compat/runs", params={"limit": "100", **filters},
                        headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["data"]


async def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    """A running ``bmo serve`` and Open WebUI in front of it, signed in as Open WebUI's implicit admin."""

    def __init__(self, http: aiohttp.ClientSession, bmo, owui_url: str, auth: dict[str, str]):
        self.http, self.bmo, self.owui_url, self.auth = http, bmo, owui_url, auth


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, http: aiohttp.ClientSession, config_text: str, timings: dict[str, float]):
    """Start BMO with ``config_text``, then Open WebUI pointed at it; both stop on exit."""
    if not (VENV / "bin" / "open-webui").exists():
        pytest.skip(f"Open WebUI is not installed in {VENV}; run examples/open_webui/setup.sh")
    config = tmp_path / "bmo.toml"
    config.write_text(config_text)
    started = time.monotonic()
    bmo = await asyncio.to_thread(
        spawn_serve, ["--addr", f"127.0.0.1:{free_port()}", "--auth-token", TOKEN, "--config", str(config)],
        data_dir=tmp_path / "bmo-data")
    assert bmo.url, bmo.stderr()
    timings["bmo_start_s"] = round(time.monotonic() - started, 2)

    owui_port = free_port()
    owui_log = tmp_path / "open-webui.log"
    started = time.monotonic()
    with open(owui_log, "wb") as log:
        owui = subprocess.Popen(
            ["bash", str(EXAMPLE / "start_open_webui.sh"), str(owui_port), f"{bmo.url}/v1", TOKEN],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "OPEN_WEBUI_DATA_DIR": str(tmp_path / "open-webui-data"),
                 "OPEN_WEBUI_VENV": str(VENV)})
    owui_url = f"http://127.0.0.1:{owui_port}"
    try:
        await _wait_http_ok(http, f"{owui_url}/health", owui, START_TIMEOUT_S, owui_log)
        timings["open_webui_start_s"] = round(time.monotonic() - started, 2)
        # Auth is off: signing in with nothing yields the implicit admin's token.
        async with http.post(f"{owui_url}/api/v1/auths/signin", json={"email": "", "password": ""}) as resp:
            assert resp.status == 200, await resp.text()
            user = await resp.json()
        yield Stack(http, bmo, owui_url, {"Authorization": f"Bearer {user['token']}"})
    finally:
        _stop(owui)
        await asyncio.to_thread(bmo.terminate)


def _write_timings(timings: dict[str, float]) -> None:
    print(f"\nopen-webui e2e timings: {json.dumps(timings)}")
    if os.environ.get("BMO_E2E_TIMINGS"):
        path = Path(os.environ["BMO_E2E_TIMINGS"])
        earlier = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
        path.write_text(json.dumps({**earlier, **timings}))


async def test_open_webui_lists_bmo_models_and_streams_its_answers(tmp_path):
    timings: dict[str, float] = {}
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("the answer is 42\n")
    async with FakeUpstream(default=open_webui_like_upstream) as up, aiohttp.ClientSession() as http:
        config_text = (
            "[options.openai_compat]\nenabled = true\ntool_policy = \"auto_approve\"\nambiguity_action = \"code\"\n"
            "keepalive_interval_s = 0.2\n\n"
            f"[agent]\ndefault_model = \"{MODEL}\"\nworkspace = \"{workspace}\"\n\n"
            # A model that goes silent for 3 s counts as failed: the hung turn below ends in an error.
            + provider_toml(up, extra="timeout_s = 3.0\nmax_retries = 0\n"))
        async with running_stack(tmp_path, http, config_text, timings) as stack:
            bmo, owui_url, auth = stack.bmo, stack.owui_url, stack.auth
            started = time.monotonic()

            # 1. BMO's models are in Open WebUI's model picker.
            async with http.get(f"{owui_url}/api/models", headers=auth) as resp:
                assert resp.status == 200, await resp.text()
                models = [m["id"] for m in (await resp.json())["data"]]
            assert MODEL in models

            # 2. A chat through Open WebUI's own API streams BMO's answer back.
            async with http.post(f"{owui_url}/api/chat/completions", headers=auth, json={
                    "model": MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "hello from open webui"}]}) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                body = (await resp.read()).decode()
            chunks = [json.loads(line[6:]) for line in body.splitlines()
                      if line.startswith("data: ") and line != "data: [DONE]"]
            streamed = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
            assert streamed == "echo: hello from open webui"
            assert len([c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]) > 1

            # ... and leaves a ledger row carrying Open WebUI's User-Agent.
            open_webui_ua = _open_webui_user_agent()
            rows = await _bmo_runs(http, bmo.url, route="chat_completions")
            mine = [r for r in rows if r["client_ua"] == open_webui_ua[:64] and r["outcome"] == "final_answer"]
            assert mine and mine[0]["stream"] is True, rows
            listed = await _bmo_runs(http, bmo.url, route="models_list")
            assert any(r["client_ua"] == open_webui_ua[:64] for r in listed)

            # 3. A saved chat, driven the way Open WebUI's own front end drives it: the chat id is
            #    forwarded, so the whole chat is one BMO session; its title task skips the agent loop.
            async with http.post(f"{owui_url}/api/v1/chats/new", headers=auth, json={"chat": {
                    "title": "e2e", "models": [MODEL], "messages": [],
                    "history": {"messages": {}, "currentId": None}}}) as resp:
                assert resp.status == 200, await resp.text()
                chat_id = (await resp.json())["id"]
            session_id = f"openwebui-{chat_id}@{MODEL.replace('/', ':')}"
            conversation: list[dict] = []
            parent = None

            async def turn(text: str) -> dict:
                """Send one user turn the way Open WebUI's front end does; the saved assistant message."""
                nonlocal parent
                user_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
                conversation.append({"role": "user", "content": text})
                async with http.post(f"{owui_url}/api/chat/completions", headers=auth, json={
                        "model": MODEL, "stream": True, "chat_id": chat_id, "id": answer_id,
                        "messages": conversation,
                        "user_message": {"id": user_id, "role": "user", "content": text, "parentId": parent}}) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

                async def saved():
                    async with http.get(f"{owui_url}/api/v1/chats/{chat_id}", headers=auth) as r:
                        message = (await r.json())["chat"]["history"]["messages"].get(answer_id) or {}
                    return message if message.get("done") or message.get("error") else None

                message = await _until(saved, 60, f"the answer to {text!r} in the Open WebUI chat")
                conversation.append({"role": "assistant", "content": message.get("content") or ""})
                parent = answer_id
                return message

            for text in ("first question", "second question"):
                assert (await turn(text))["content"] == f"echo: {text}"
            chat_rows = await _bmo_runs(http, bmo.url, session_id=session_id)
            assert len([r for r in chat_rows if r["kind"] == "chat" and r["outcome"] == "final_answer"]) == 2
            # Issue 12: only a request to a session that existed before it reuses one (rows are newest first).
            assert [r["is_session_reuse"] for r in chat_rows] == [True, False]

            # BMO's own tool run shows in Open WebUI's reasoning block, never as a tool call for it to run.
            message = await turn("please read my notes")
            assert message["content"] == "The notes say: the answer is 42"
            reasoning = [o for o in message.get("output") or [] if o.get("type") == "reasoning"]
            assert reasoning and "read_file" in json.dumps(reasoning)
            assert not [o for o in message.get("output") or [] if "function_call" in str(o.get("type"))]

            async with http.post(f"{owui_url}/api/v1/tasks/title/completions", headers=auth, json={
                    "model": MODEL, "chat_id": chat_id, "messages": conversation}) as resp:
                assert resp.status == 200, await resp.text()
                title = await resp.json()
            assert title["choices"][0]["message"]["content"] == TITLE_JSON
            # The emoji task's prompt has no "### Task:" marker: the {{TASK}} header names it.
            async with http.post(f"{owui_url}/api/v1/tasks/emoji/completions", headers=auth, json={
                    "model": MODEL, "chat_id": chat_id, "prompt": "what a lovely day"}) as resp:
                assert resp.status == 200, await resp.text()
            task_rows = [r for r in await _bmo_runs(http, bmo.url, session_id=session_id) if r["kind"] == "task"]
            assert len(task_rows) == 2 and {r["outcome"] for r in task_rows} == {"final_answer"}
            assert not [r for r in await _bmo_runs(http, bmo.url, outcome="queued")]
            # Keep-alive comments during a slow answer do not disturb Open WebUI's stream parsing.
            assert (await turn("take your time"))["content"] == "slow but sure"

            # A model that stops mid-answer: Open WebUI receives the error event and shows it on the message.
            message = await turn("please hang")
            assert "thinking" in (message.get("content") or "")
            assert message.get("error"), message
            timings["test_s"] = round(time.monotonic() - started, 2)
    _write_timings(timings)
