"""The runnable examples work against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from compat_support import MODEL, TOKEN

from bmo.testing.fake_upstream import reply

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def test_openai_sdk_example_runs(compat):
    env = {**os.environ, "BMO_BASE_URL": compat.api, "BMO_AUTH_TOKEN": TOKEN, "BMO_MODEL": MODEL}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "openai_sdk" / "chat.py"), "ping", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "answer (req_" in text and "echo: ping" in text
    assert "streamed: echo: ping" in text and "usage:" in text
    assert "echo: Which word did I ask you to remember?" in text


async def test_structured_output_example_runs(compat):
    compat.model.answer(reply('{"city": "Oslo", "celsius": 4}'), reply("    return a + b"), reply("Hello"))
    env = {**os.environ, "BMO_BASE_URL": compat.api, "BMO_AUTH_TOKEN": TOKEN, "BMO_MODEL": MODEL}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "openai_sdk" / "structured.py"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"model: {MODEL}" in text and "parsed: Weather(city='Oslo', celsius=4)" in text
    assert "completion: '    return a + b'" in text and "same answer on retry: True" in text
    assert len(compat.up.completion_requests) == 1


def test_continue_example_is_valid_json_pointing_at_v1():
    config = json.loads((EXAMPLES / "continue" / "config.json").read_text())
    for model in (config["models"][0], config["tabAutocompleteModel"]):
        assert model["provider"] == "openai" and model["apiBase"].endswith("/v1")
