"""Fixtures for the openai_compat tests: a real BMO server (only this plugin) in front of a scripted fake model."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from compat_support import TOKEN, Compat, ScriptedModel, compat_toml

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import postgres_cluster, store_backend, store_url  # noqa: F401
from bmo.testing.harness import start_server


@pytest_asyncio.fixture
async def start_compat(tmp_path, store_url):
    """``await start_compat(**options)`` -> :class:`Compat` on each store backend; everything stops after the test."""
    started: list = []

    async def start(*, token: str | None = TOKEN, env: dict | None = None, extra_toml: str = "", **options) -> Compat:
        model = ScriptedModel()
        up = await FakeUpstream(models=["fake-model", "other-model"], default=model).start()
        workspace = tmp_path / f"ws{len(started)}"
        workspace.mkdir()
        (workspace / "notes.txt").write_text("BMO notes: the answer is 42.\n")
        server = await start_server(tmp_path / f"data{len(started)}", config_toml=compat_toml(up, workspace, extra_toml, **options),
                                    token=token, load_plugins="openai_compat", env=env, store_url=store_url)
        compat = Compat(server, up, model, workspace)
        started.append(compat)
        return compat

    yield start
    for compat in reversed(started):
        await compat.server.stop()
        await compat.up.stop()


@pytest_asyncio.fixture
async def compat(start_compat) -> Compat:
    return await start_compat()


@pytest.fixture
def golden_dir() -> Path:
    return Path(__file__).parent / "golden"
