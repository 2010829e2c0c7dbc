"""No process a command started outlives it: not after it ends, a timeout, a client cancel, a server stop
or a kill -9 of the server; setsid, double forks and nohup included. Processes are found in /proc by a
marker only these commands carry (zombies left to an init that does not reap are not alive)."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import openai
import pytest
import pytest_asyncio

from bmo.testing.harness import spawn_serve, start_server
from tests.agent.sandbox_support import (  # noqa: F401 - bwrap_required, marker, model_up are fixtures
    MODEL,
    PROVIDER_KEY,
    ShellModel,
    alive_with,
    bwrap_required,
    compat_config,
    kill_marked,
    marker,
    model_up,
    new_marker,
    require_bwrap,
    tool_results,
    tree_command,
    wait_gone,
    wait_tree,
)

TOKEN = "proc-test-token"


@pytest_asyncio.fixture
async def server(tmp_path, model_up):
    _, up = model_up
    (tmp_path / "ws").mkdir()
    running = await start_server(tmp_path / "data", config_toml=compat_config(up, tmp_path / "ws"), token=TOKEN,
                                 load_plugins="openai_compat")
    yield running
    await running.stop()


def chat_body(stream: bool = False) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "go"}], "stream": stream}


async def test_background_processes_end_with_the_command(server, model_up, marker):
    model, up = model_up
    model.shell(f"setsid sleep 1000.{marker} & (sleep 1001.{marker} &) ; echo started")
    client = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, timeout=60, max_retries=0)
    await client.chat.completions.create(**chat_body())
    await client.close()
    assert tool_results(up)["c0"] == "exit code 0\nstarted\n"
    assert await wait_gone(marker) == []


async def test_a_timeout_leaves_no_process_behind(server, model_up, marker):
    model, up = model_up
    model.shell(tree_command(marker), timeout_s=3)
    client = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, timeout=60, max_retries=0)
    request = asyncio.ensure_future(client.chat.completions.create(**chat_body()))
    await wait_tree(marker)
    await request
    await client.close()
    assert "timed out after 3s" in tool_results(up)["c0"]
    assert await wait_gone(marker) == []


async def test_a_client_cancel_leaves_no_process_behind(server, model_up, marker):
    model, _ = model_up
    model.shell(tree_command(marker))
    async with aiohttp.ClientSession() as http:
        response = await http.post(server.api + "/chat/completions", json=chat_body(stream=True),
                                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        await wait_tree(marker)
        response.close()  # the client walks away mid-stream: the run is cancelled
    assert await wait_gone(marker) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_stopping_or_killing_the_server_leaves_no_process_behind(tmp_path, model_up, marker, sig):
    model, up = model_up
    (tmp_path / "ws").mkdir()
    config = tmp_path / "bmo.toml"
    config.write_text(compat_config(up, tmp_path / "ws"))
    serve = await asyncio.to_thread(
        spawn_serve, ["--config", str(config), "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
        env={"BMO_LOAD_PLUGINS": "openai_compat", "BMO_AUTH_TOKEN": TOKEN, "FAKE_PROVIDER_KEY": PROVIDER_KEY})
    try:
        assert serve.url, serve.stderr()
        model.shell(tree_command(marker))
        async with aiohttp.ClientSession() as http:
            response = await http.post(serve.url + "/v1/chat/completions", json=chat_body(stream=True),
                                       headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status == 200
            await wait_tree(marker)
            assert alive_with(marker)
            serve.proc.send_signal(sig)
            code = await asyncio.to_thread(serve.proc.wait, 30)
            response.close()
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), serve.stderr()
        assert await wait_gone(marker) == []
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(10)


