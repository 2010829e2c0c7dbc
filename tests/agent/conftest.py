"""Agent-core test support: a real BMO server on the fake upstream, and a native API client."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server
from tests.agent.native_client import Native


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest_asyncio.fixture
async def agent(tmp_path, workspace, fake_upstream):
    """``await agent(agent_toml="...", toml="...")`` starts a server on the fake upstream; all stop after the test."""
    started: list[Native] = []

    async def start(agent_toml: str = "", toml: str = "", *, providers: bool = True, data_dir: Path | None = None,
                    up: FakeUpstream | None = None, env: dict[str, str] | None = None) -> Native:
        text = f'[agent]\nworkspace = "{workspace}"\npermission_timeout_s = 10\n{agent_toml}\n{toml}\n'
        if providers:
            text += provider_toml(up or fake_upstream)
        server = await start_server(data_dir or tmp_path / "data", config_toml=text, load_plugins="", env=env)
        native = Native(server, aiohttp.ClientSession())
        started.append(native)
        return native

    yield start
    for native in reversed(started):
        await native.stop()
