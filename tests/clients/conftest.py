"""The client compatibility suite's server: BMO with the compat plugin in front of a scriptable fake model.

``tool_policy = "auto_approve"`` so client tools round-trip; ``ambiguity_action = "code"`` so no
router call takes a scripted reply. Tests script the model with ``bmo.up.script(...)``; unscripted
calls echo the last user message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream
from bmo.testing.fixtures import provider_toml
from bmo.testing.harness import start_server

MODEL = "fake/fake-model"
TOKEN = "clients-token"
# Opt-in switches: npm installs and Codex CLI take minutes and need the npm registry.
NPM_ENV = "BMOTEST_CLIENTS_NPM"
CODEX_ENV = "BMOTEST_CODEX_E2E"
# instructor pins jiter<0.15, which forces openai down to 3.3; it runs in a venv of its own
# (test_instructor.py skips itself before importing it unless this is set).
INSTRUCTOR_ENV = "BMOTEST_CLIENTS_INSTRUCTOR"


@dataclass
class Bmo:
    server: object
    up: FakeUpstream
    workspace: Path

    @property
    def base_url(self) -> str:
        return self.server.api  # http://127.0.0.1:<port>/v1

    @property
    def ledger(self):
        return self.server.host.state["openai_compat"].ledger

    async def rows(self, route: str | None = None) -> list[dict]:
        await self.ledger.drain()
        rows, _ = await self.ledger.list_runs(limit=100, route=route)
        return rows

    def agent_requests(self) -> list:
        return self.up.chat_requests


@pytest_asyncio.fixture
async def bmo(tmp_path) -> Bmo:
    up = await FakeUpstream(models=["fake-model"]).start()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = (
        '[options.openai_compat]\nenabled = true\ntool_policy = "auto_approve"\nambiguity_action = "code"\n\n'
        f'[agent]\ndefault_model = "{MODEL}"\nworkspace = "{workspace}"\nmax_steps = 6\n\n'
        + provider_toml(up, extra="timeout_s = 10.0\nmax_retries = 0\n")
    )
    server = await start_server(tmp_path / "data", config_toml=config, token=TOKEN, load_plugins="openai_compat")
    yield Bmo(server, up, workspace)
    await server.stop()
    await up.stop()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("clients_npm") and os.environ.get(NPM_ENV) != "1":
            item.add_marker(pytest.mark.skip(reason=f"opt-in: set {NPM_ENV}=1 (npm installs the Node clients)"))
        if item.get_closest_marker("codex_e2e") and os.environ.get(CODEX_ENV) != "1":
            item.add_marker(pytest.mark.skip(reason=f"opt-in: set {CODEX_ENV}=1 (npm installs @openai/codex)"))
