"""End to end with a real Arize Phoenix (PyPI ``arize-phoenix``) as BMO's OTLP receiver.

Opt-in (``BMO_E2E_PHOENIX=1``): Phoenix is a large install. The test installs ``arize-phoenix`` and
``arize-phoenix-client`` into a venv of their own (``BMO_PHOENIX_VENV``, default
``~/.cache/bmo-e2e/phoenix-venv``) the first time, starts ``phoenix serve`` on free ports, sends one chat
with a tool call through the real openai SDK with content capture on, and reads the trace back
through Phoenix's own client (``phoenix.client.Client().spans.get_spans``). Only the model is fake.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from bmo.testing.fake_upstream import FakeUpstream, reply, tool_call
from bmo.testing.harness import free_port, start_server

VENV = Path(os.environ.get("BMO_PHOENIX_VENV", Path.home() / ".cache" / "bmo-e2e" / "phoenix-venv"))
START_TIMEOUT_S = float(os.environ.get("BMO_PHOENIX_START_TIMEOUT_S", "300"))  # imports and migrations: slow
INSTALL_TIMEOUT_S = 1800.0

pytestmark = [
    pytest.mark.phoenix_e2e,
    pytest.mark.skipif(os.environ.get("BMO_E2E_PHOENIX") != "1",
                       reason="opt-in: set BMO_E2E_PHOENIX=1 (installs arize-phoenix into BMO_PHOENIX_VENV)"),
]

# Run inside Phoenix's venv: every span of the default project, as JSON, through Phoenix's own client.
QUERY = """
import json, sys
from phoenix.client import Client
spans = Client(base_url=sys.argv[1]).spans.get_spans(project_identifier="default", limit=1000)
print(json.dumps(spans))
"""


def _installed_venv() -> Path:
    if (VENV / "bin" / "phoenix").exists():
        return VENV
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "arize-phoenix", "arize-phoenix-client"],
                   check=True, timeout=INSTALL_TIMEOUT_S)
    return VENV


async def _wait_up(url: str, proc: subprocess.Popen, log: Path) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < START_TIMEOUT_S:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"phoenix exited with {proc.returncode}:\n{tail}")
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(1)
    raise AssertionError(f"phoenix not up within {START_TIMEOUT_S:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _spans(venv: Path, base_url: str) -> list[dict]:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", QUERY, base_url], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)


def _attr(span: dict, key: str):
    """An attribute whether Phoenix answers it flat (``input.value``) or nested (``{"input": {"value"}}``)."""
    attributes = span.get("attributes") or {}
    if key in attributes:
        return attributes[key]
    node = attributes
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


async def test_a_chat_with_a_tool_call_shows_in_phoenix_with_content_and_parent_links(tmp_path):
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    venv = await asyncio.to_thread(_installed_venv)
    timings["install_s"] = time.monotonic() - t0
    port, grpc_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "phoenix.log"
    env = {**os.environ, "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix")}
    with log.open("wb") as sink:
        proc = subprocess.Popen([str(venv / "bin" / "phoenix"), "serve"], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        timings["phoenix_start_s"] = await _wait_up(f"{base}/healthz", proc, log)
        workspace = tmp_path / "ws"
        workspace.mkdir()
        (workspace / "notes.txt").write_text("the launch code is 4711")
        async with FakeUpstream() as up:
            up.script(reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})]),
                      reply(tool_calls=[tool_call("read_file", {"path": "notes.txt"}, id="call_1")]),
                      reply("The notes say the launch code is 4711."))
            toml = (f'[agent]\nworkspace = "{workspace}"\ndefault_model = "fake/fake-model"\n\n'
                    f'[options.openai_compat]\nenabled = true\n\n'
                    f'[providers.fake]\nkind = "openai"\nbase_url = "{up.url}/v1"\nmodels = ["fake-model"]\n\n'
                    f'[tracing]\notlp_endpoint = "{base}"\ncapture_content = true\n')
            srv = await start_server(tmp_path / "data", config_toml=toml, env={})
            try:
                client = openai.AsyncOpenAI(base_url=srv.api, api_key=srv.token, max_retries=0)
                t1 = time.monotonic()
                answer = await client.chat.completions.create(
                    model="fake/fake-model", messages=[{"role": "user", "content": "What is in notes.txt?"}],
                    extra_headers={"X-BMO-Session-Id": "phoenix-e2e"})
                timings["chat_s"] = time.monotonic() - t1
                await client.close()
            finally:
                await srv.stop()  # flushes the batch to Phoenix
        assert answer.choices[0].message.content == "The notes say the launch code is 4711."

        t2 = time.monotonic()
        spans: list[dict] = []
        while time.monotonic() - t2 < 60:
            spans = await asyncio.to_thread(_spans, venv, base)
            names = {s["name"] for s in spans}
            if "execute_tool read_file" in names and sum(s["name"] == "chat fake-model" for s in spans) >= 2:
                break
            await asyncio.sleep(1)
        timings["spans_visible_s"] = time.monotonic() - t2
        print(f"phoenix e2e timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
              f"{len(spans)} spans: {sorted(s['name'] for s in spans)}")

        tool = next(s for s in spans if s["name"] == "execute_tool read_file")
        models = [s for s in spans if s["name"] == "chat fake-model"]
        final = next(s for s in models if "4711" in (_attr(s, "output.value") or "") and "launch code is" in
                     (_attr(s, "output.value") or ""))
        trace_id = tool["context"]["trace_id"]
        trace = [s for s in spans if s["context"]["trace_id"] == trace_id]
        by_id = {s["context"]["span_id"]: s for s in trace}
        roots = [s for s in trace if not s.get("parent_id")]
        assert len(roots) == 1, [(s["name"], s.get("parent_id")) for s in trace]
        root = roots[0]

        # One trace: the request span is the root; model and tool spans hang below it.
        assert final["context"]["trace_id"] == trace_id
        for span in (tool, final):
            chain, node = [], span
            while node.get("parent_id"):
                node = by_id[node["parent_id"]]
                chain.append(node["name"])
            assert chain and chain[-1] == root["name"], (span["name"], chain)

        # Content on the model span: the user's question in, the answer out (and the tool result fed back).
        assert "What is in notes.txt?" in _attr(final, "input.value")
        assert "4711" in _attr(final, "input.value")  # the read_file result went back to the model
        assert _attr(final, "output.value") == "The notes say the launch code is 4711."
        assert _attr(final, "gen_ai.response.model") == "fake-model"
        # And on the tool span: its arguments in, the file out.
        assert json.loads(_attr(tool, "input.value")) == {"path": "notes.txt"}
        assert "the launch code is 4711" in _attr(tool, "output.value")
        assert tool["status_code"] != "ERROR" and final["status_code"] != "ERROR"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
