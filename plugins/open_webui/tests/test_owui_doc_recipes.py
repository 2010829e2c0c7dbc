"""Every ``bmo logs`` recipe in docs/open-webui.md, run as a real command against a real server's log."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import openai
import pytest
from owui_server import MODEL, TOKEN, serve

DOC = Path(__file__).resolve().parents[3] / "docs" / "open-webui.md"
CHAT_ID = "doc-chat-1"
TITLE_PROMPT = "### Task:\nGenerate a title.\n### Chat History:\n<chat_history>\nUSER: hi\n</chat_history>"


def recipes() -> dict[str, str]:
    found = {}
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S):
        lines = block.strip().splitlines()
        for comment, command in zip(lines, lines[1:]):
            match = re.match(r"# recipe: (\S+)$", comment)
            if match:
                found[match.group(1)] = command
    return found


EXPECT = {
    "owui-chat": ["openai_compat.fired", "outcome=final_answer", f"session_id=openwebui-{CHAT_ID}@fake:fake-model", "kind=task"],
    "owui-tasks": ["kind=task", "outcome=final_answer"],
    "owui-busy": ["outcome=queued", f"session_id=openwebui-{CHAT_ID}@fake:fake-model"],
    "owui-requesters": ['"value": "ada@example.org"'],
}


def test_every_recipe_in_the_doc_is_checked():
    assert set(recipes()) == set(EXPECT)
    assert all(command.startswith("bmo logs ") for command in recipes().values())


@pytest.fixture
async def traffic_log(tmp_path, upstream, workspace) -> Path:
    """A BMO data dir whose log holds an Open WebUI chat, its title task and a refused busy turn."""
    server = await serve(tmp_path, upstream, workspace, env={"BMO_REQUESTER_TRUSTED_PROXIES": "127.0.0.1"})
    headers = {"X-OpenWebUI-Chat-Id": CHAT_ID, "X-OpenWebUI-User-Email": "ada@example.org"}
    try:
        sdk = openai.AsyncOpenAI(base_url=server.api, api_key=TOKEN, max_retries=0)
        await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                          extra_headers=headers)
        await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": TITLE_PROMPT}],
                                          extra_headers=headers)
        async with aiohttp.ClientSession() as http:
            stream = await http.post(f"{server.api}/chat/completions", headers=server.headers(**headers), json={
                "model": MODEL, "stream": True, "messages": [
                    {"role": "user", "content": "hi"}, {"role": "assistant", "content": "echo: hi"},
                    {"role": "user", "content": "please hang"}]})
            try:
                await asyncio.wait_for(stream.content.readline(), 10)  # the run is under way
                with pytest.raises(openai.ConflictError):
                    await sdk.chat.completions.create(model=MODEL, extra_headers=headers, messages=[
                        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "echo: hi"},
                        {"role": "user", "content": "me too"}])
            finally:
                stream.close()
    finally:
        await server.stop()
    return tmp_path / "bmo"


def test_recipes_answer_their_questions(traffic_log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMO_")}
    env.update(BMO_DATA_DIR=str(traffic_log), CHAT_ID=CHAT_ID, XDG_CONFIG_HOME=str(traffic_log / "xdg"))
    for name, command in recipes().items():
        argv = command.replace("bmo logs ", f"{sys.executable} -m bmo logs ", 1)
        result = subprocess.run(argv, shell=True, capture_output=True, text=True, env=env, cwd=traffic_log,
                                timeout=60)
        assert result.returncode == 0, (name, result.stderr)
        for expected in EXPECT[name]:
            assert expected in result.stdout, (name, expected, result.stdout[-2000:])
