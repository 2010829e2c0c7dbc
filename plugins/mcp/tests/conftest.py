"""Fixtures for the MCP plugin's tests: real MCP servers (PyPI over stdio, npm over HTTP) and BMO on the fake upstream."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
import pytest_asyncio

from bmo.testing.fixtures import fake_upstream, provider_toml  # noqa: F401
from bmo.testing.harness import free_port, start_server
from mcp_peers import EVERYTHING_PACKAGE

@pytest.fixture
def mark() -> str:
    return uuid.uuid4().hex


@pytest_asyncio.fixture
async def bmo(tmp_path, fake_upstream):  # noqa: F811
    """``await bmo(toml, plugins="mcp")`` serves BMO in-process on the fake upstream; stopped after the test."""
    started = []

    async def start(toml: str = "", *, plugins: str = "mcp", agent_toml: str = ""):
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        text = (f'[agent]\nworkspace = "{workspace}"\npermission_timeout_s = 10\n{agent_toml}\n'
                f'{provider_toml(fake_upstream)}\n{toml}')
        server = await start_server(tmp_path / f"data{len(started)}", config_toml=text, load_plugins=plugins)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()


@pytest.fixture(scope="module")
def everything_url(tmp_path_factory):
    """``@modelcontextprotocol/server-everything`` (npm) serving streamable HTTP on a free port; its /mcp URL."""
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx (Node.js) is not installed, so the npm MCP server cannot run")
    port = free_port()
    log = tmp_path_factory.mktemp("everything") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([npx, "-y", EVERYTHING_PACKAGE, "streamableHttp"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PORT": str(port)},
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180  # a fresh machine downloads the package first
        while not re.search(rf"listening on port {port}", log.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server-everything did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
