"""Fixtures for the Open WebUI plugin's tests (the server and upstream they use live in owui_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest_asyncio
from owui_server import open_webui_like_upstream, serve

from bmo.testing.fake_upstream import FakeUpstream


@pytest_asyncio.fixture
async def upstream():
    async with FakeUpstream(default=open_webui_like_upstream) as up:
        yield up


@pytest_asyncio.fixture
async def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "notes.txt").write_text("the answer is 42\n")
    return ws


@pytest_asyncio.fixture
async def bmo(tmp_path: Path, upstream: FakeUpstream, workspace: Path):
    server = await serve(tmp_path, upstream, workspace)
    try:
        yield server
    finally:
        await server.stop()


