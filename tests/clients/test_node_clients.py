"""Node clients, installed with npm (opt-in: BMOTEST_CLIENTS_NPM=1): the openai Node SDK and the Vercel AI SDK.

``BMOTEST_NPM_DIR`` reuses an install (a directory holding ``node_modules``); otherwise npm installs
``tests/clients/node/package.json`` into a temporary directory (about 15 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bmo.testing.fake_upstream import reply
from tests.clients.cases import city_json, weather_call
from tests.clients.conftest import MODEL, TOKEN

NODE_DIR = Path(__file__).parent / "node"
pytestmark = pytest.mark.clients_npm


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory) -> Path:
    cached = os.environ.get("BMOTEST_NPM_DIR")
    root = Path(cached) if cached else tmp_path_factory.mktemp("npm")
    if not (root / "node_modules").is_dir():
        shutil.copy(NODE_DIR / "package.json", root / "package.json")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=root, check=True, timeout=600)
    for script in NODE_DIR.glob("*.mjs"):
        shutil.copy(script, root / script.name)
    return root


async def run_node(root: Path, script: str, bmo) -> dict:
    env = {**os.environ, "BMO_BASE_URL": bmo.base_url, "BMO_TOKEN": TOKEN, "BMO_MODEL": MODEL}
    proc = await asyncio.create_subprocess_exec("node", script, cwd=root, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    return json.loads(stdout.decode().strip().splitlines()[-1])


async def test_openai_node(bmo, node_modules):
    bmo.up.script(reply("echo: hi node"), reply("echo: flow node"), weather_call())
    out = await run_node(node_modules, "openai_node.mjs", bmo)
    assert out["chat"] == "echo: hi node" and out["stream"] == "echo: flow node"
    assert out["tool_call"] == "get_weather"
    assert out["responses"] == ["echo: resp node", "echo: resp node 2"]
    assert out["responses_stream"] == "echo: rstream node"


async def test_vercel_ai_sdk(bmo, node_modules):
    bmo.up.script(reply("echo: hi vercel"), reply("echo: hi vercel chat"), reply("echo: flow vercel"), weather_call(),
                  reply("It is sunny."), city_json(), city_json())
    out = await run_node(node_modules, "vercel_ai.mjs", bmo)
    assert out["responses"] == "echo: hi vercel" and out["chat"] == "echo: hi vercel chat"
    assert out["stream"] == "echo: flow vercel"
    assert out["tools"] == "It is sunny."
    assert out["object"] == out["chat_object"] == {"name": "Oslo", "population": 700000}
    routes = [r["route"] for r in await bmo.rows()]
    assert routes.count("responses_create") == 5 and routes.count("chat_completions") == 2
