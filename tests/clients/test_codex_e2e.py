"""Codex CLI (npm @openai/codex) in ``codex exec`` against BMO over ``wire_api = "responses"`` (opt-in).

Run: ``BMOTEST_CODEX_E2E=1 .venv/bin/python -m pytest -q tests/clients/test_codex_e2e.py``; set
``BMOTEST_CODEX_DIR`` to a directory where ``npm install @openai/codex`` already ran to skip the install.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from bmo.testing.fake_upstream import reply, tool_call
from tests.clients.conftest import MODEL, TOKEN

pytestmark = pytest.mark.codex_e2e


@pytest.fixture(scope="module")
def codex_bin(tmp_path_factory) -> Path:
    cached = os.environ.get("BMOTEST_CODEX_DIR")
    root = Path(cached) if cached else tmp_path_factory.mktemp("codex")
    binary = root / "node_modules" / ".bin" / "codex"
    if not binary.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "@openai/codex"], cwd=root, check=True,
                       timeout=600)
    return binary


async def test_codex_exec_answers_through_the_responses_api(bmo, codex_bin, tmp_path):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\nmodel_provider = "bmo"\n\n[model_providers.bmo]\nname = "BMO"\n'
        f'base_url = "{bmo.base_url}"\nenv_key = "BMO_TOKEN"\nwire_api = "responses"\n')
    bmo.up.script(reply("Hello from BMO."))
    last = tmp_path / "last.txt"
    env = {**os.environ, "CODEX_HOME": str(home), "BMO_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        str(codex_bin), "exec", "--skip-git-repo-check", "-s", "read-only", "-o", str(last), "say hello",
        cwd=bmo.workspace, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, (stdout.decode()[-2000:], stderr.decode()[-3000:])
    assert last.read_text().strip() == "Hello from BMO."
    rows = await bmo.rows("responses_create")
    assert rows and all(r["outcome"] == "final_answer" for r in rows)


async def test_codex_runs_a_client_tool_call_and_continues(bmo, codex_bin, tmp_path):
    """The model asks Codex to run a command (its exec_command function tool); Codex runs it, sends the
    output back as a function_call_output item, and the model's next answer is the final message."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\nmodel_provider = "bmo"\n\n[model_providers.bmo]\nname = "BMO"\n'
        f'base_url = "{bmo.base_url}"\nenv_key = "BMO_TOKEN"\nwire_api = "responses"\n')
    (bmo.workspace / "notes.txt").write_text("the answer is 42\n")
    bmo.up.script(reply(tool_calls=[tool_call("exec_command", {"cmd": "cat notes.txt"}, id="call_cx")]),
                  reply("The notes say 42."))
    last = tmp_path / "last.txt"
    env = {**os.environ, "CODEX_HOME": str(home), "BMO_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        # No Codex sandbox: its bwrap helper (codex-linux-sandbox) is not on PATH from the npm package here,
        # and the only command run is the test's own scripted `cat notes.txt` in a temporary workspace.
        str(codex_bin), "exec", "--skip-git-repo-check", "-s", "danger-full-access", "-o", str(last),
        "what do the notes say?",
        cwd=bmo.workspace, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, (stdout.decode()[-2000:], stderr.decode()[-3000:])
    assert last.read_text().strip() == "The notes say 42."
    results = [m for m in bmo.up.chat_requests[-1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == ["call_cx"]
    assert "the answer is 42" in results[0]["content"]
