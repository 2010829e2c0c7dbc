"""The Open WebUI names are aliases: same functions, same output as the openai-compat surfaces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from owui_server import MODEL, TOKEN, ledger_row

CONFIG = """\
[options.openai_compat]
enabled = true
tool_policy = "auto_approve"
advertised_models = ["fake/fake-model"]

[options.open_webui]
chat_id_headers = ["X-OpenWebUI-Chat-Id", "X-Chat"]
session_prefix = "owui-"
"""


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMO_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), BMO_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "bmo", "config", *args, "--config", str(tmp_path / "bmo.toml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_show_open_webui_prints_exactly_what_show_openai_compat_prints(tmp_path, json_flag):
    (tmp_path / "bmo.toml").write_text(CONFIG)
    compat = run_cli(tmp_path, "show-openai-compat", *json_flag)
    alias = run_cli(tmp_path, "show-open-webui", *json_flag)
    assert compat.returncode == 0, compat.stderr
    assert alias.returncode == 0, alias.stderr
    assert alias.stdout == compat.stdout
    # The shared report carries the Open WebUI settings too, so either name shows them.
    assert "options.open_webui" in compat.stdout and "owui-" in compat.stdout and "X-Chat" in compat.stdout
    assert "fake/fake-model" in compat.stdout


def test_show_open_webui_help_has_the_example_output(tmp_path):
    (tmp_path / "bmo.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMO_")}
    help_text = subprocess.run([sys.executable, "-m", "bmo", "config", "show-open-webui", "--help"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60).stdout
    assert "show-openai-compat" in help_text and "Example output" in help_text


async def test_openwebui_slash_is_the_openai_compat_command(bmo):
    registry = bmo.host.registry
    assert registry.slash("/openwebui").run is registry.slash("/openai-compat").run
    # Put something in the ledger so the report has rows, then compare the rendered reports.
    sdk = openai.AsyncOpenAI(base_url=bmo.api, api_key=TOKEN, max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_headers={"X-OpenWebUI-Chat-Id": "s1"})
    async with aiohttp.ClientSession() as http:
        await ledger_row(http, bmo, raw.headers["x-request-id"])
    compat = await bmo.host.render_slash("/openai-compat")
    alias = await bmo.host.render_slash("/openwebui")
    assert alias == compat
    assert "chat_completions" in compat and "auto_approve" in compat


async def test_posture_has_one_source(bmo):
    # No Open WebUI posture section of its own: the alias plugin adds names, never a second snapshot.
    assert [name for name, _ in bmo.host.registry.posture.items() if "webui" in name.replace("_", "")] == []
    snapshot = await bmo.host.posture()
    assert snapshot and all("open_webui" not in section for section in snapshot)


def test_an_unusable_session_prefix_is_a_config_error_naming_the_key(tmp_path):
    (tmp_path / "bmo.toml").write_text(CONFIG.replace('session_prefix = "owui-"', 'session_prefix = "my chats/"'))
    result = run_cli(tmp_path, "show-open-webui")
    assert result.returncode == 2
    assert "options.open_webui.session_prefix" in result.stderr and "Traceback" not in result.stderr
