"""Helpers for the MCP plugin's tests: real MCP peers' config, child-process checks, driving agent runs."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmo.agent import coordinator_of
from bmo.agent.events import PermissionRequested, RunFinished
from bmo.agent.messages import ChatMessage
from bmo.agent.run import RunPolicy
from bmo.testing.harness import free_port

EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31"
MARK_VAR = "BMO_MCP_TEST_MARK"


def time_server_toml(name: str = "time", *, mark: str = "", extra: str = "") -> str:
    """An ``[mcp.NAME]`` table starting mcp-server-time (PyPI) over stdio, its clock in UTC."""
    if importlib.util.find_spec("mcp_server_time") is None:
        pytest.skip("mcp-server-time is not installed: `pip install -e 'plugins/mcp[test]'` installs it")
    env = f'env = {{ {MARK_VAR} = "{mark}" }}\n' if mark else ""
    return (f'[mcp.{name}]\ncommand = "{sys.executable}"\n'
            f'args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]\n{env}{extra}\n')


def marked_processes(mark: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``BMO_MCP_TEST_MARK=<mark>``."""
    needle = f"{MARK_VAR}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


async def run_agent(host, text: str, *, policy: RunPolicy | None = None, decide: str | None = None) -> tuple[RunFinished, list]:
    """One run on a new session; ``decide`` answers each permission challenge. Returns (result, events)."""
    co = coordinator_of(host)
    session = await co.create_session(model=co.default_model())
    run = await co.start_run(session, [ChatMessage(role="user", content=text)], policy=policy or RunPolicy())
    events = []
    async with asyncio.timeout(60):
        async for event in run.events():
            events.append(event)
            if isinstance(event, PermissionRequested) and decide:
                await co.decide_permission(event.permission_id, decide, "tester")
    return await run.wait(), events


def tool_messages(request) -> list[dict]:
    return [m for m in request.messages if m.get("role") == "tool"]


def start_everything(log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``@modelcontextprotocol/server-everything`` (npm) on ``port`` (default a free one): (process, /mcp URL)."""
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx (Node.js) is not installed, so the npm MCP server cannot run")
    port = port or free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([npx, "-y", EVERYTHING_PACKAGE, "streamableHttp"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "PORT": str(port)},
                                start_new_session=True)
    deadline = time.monotonic() + 180  # a fresh machine downloads the package first
    while not re.search(rf"listening on port {port}", log.read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_everything(proc)
            pytest.fail(f"server-everything did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/mcp"


def stop_everything(proc: subprocess.Popen) -> None:
    """Stop it and the node processes npx started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(10)
