"""Fixtures for the MCP plugin's tests: real MCP servers (PyPI over stdio, npm over HTTP) and BMO on the fake upstream."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio
from mcp_peers import start_everything, stop_everything

from bmo.testing.fixtures import fake_upstream, provider_toml  # noqa: F401
from bmo.testing.harness import start_server


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
    proc, url = start_everything(tmp_path_factory.mktemp("everything") / "server.log")
    try:
        yield url
    finally:
        stop_everything(proc)
