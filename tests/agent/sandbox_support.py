"""Sandbox test support: bwrap is required (a failure, never a silent skip, in CI), a compat server
under ``tool_policy = "auto_approve"`` whose fake model calls ``run_shell``, and process scans by marker."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections import deque
from pathlib import Path

import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream, Reply, reply, tool_call
from bmo.testing.fixtures import provider_toml

MODEL = "fake/fake-model"
PROVIDER_KEY = "sk-provider-secret-5d1e"  # what the fake provider's api_key_env variable holds


def require_bwrap() -> None:
    """Fail without bwrap; only a developer machine may skip, with BMO_TEST_ALLOW_NO_BWRAP=1 and not in CI."""
    if shutil.which("bwrap"):
        return
    if os.environ.get("BMO_TEST_ALLOW_NO_BWRAP") == "1" and os.environ.get("CI", "").lower() != "true":
        pytest.skip("bwrap is not installed and BMO_TEST_ALLOW_NO_BWRAP=1 is set")
    pytest.fail("bwrap is not installed: run scripts/setup as root, or apt-get install bubblewrap "
                "(on a developer machine only, BMO_TEST_ALLOW_NO_BWRAP=1 skips the sandbox tests)")


class ShellModel:
    """The fake model: the router call is answered "clear"; chat calls play ``replies``, then "done"."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()

    def __call__(self, body: dict) -> Reply:
        if any((t.get("function") or {}).get("name") == "bmo_route" for t in body.get("tools") or []):
            return reply(tool_calls=[tool_call("bmo_route", {"decision": "clear", "question": ""})])
        return self.replies.popleft() if self.replies else reply("done")

    def shell(self, *commands: str, timeout_s: float | None = None) -> None:
        """Script one turn calling run_shell once per command (ids c0, c1, ...), then a final answer."""
        calls = []
        for i, command in enumerate(commands):
            args: dict = {"command": command}
            if timeout_s is not None:
                args["timeout_s"] = timeout_s
            calls.append(tool_call("run_shell", args, id=f"c{i}"))
        self.replies.extend([reply(tool_calls=calls), reply("done")])


def compat_config(up: FakeUpstream, workspace: Path, extra: str = "") -> str:
    return (
        '[options.openai_compat]\nenabled = true\ntool_policy = "auto_approve"\n\n'
        f'[agent]\ndefault_model = "{MODEL}"\nworkspace = "{workspace}"\nshell_timeout_s = 60\n\n'
        + provider_toml(up, extra='api_key_env = "FAKE_PROVIDER_KEY"\nmax_retries = 0\n') + "\n" + extra
    )


def tool_results(up: FakeUpstream) -> dict[str, str]:
    """The run_shell results the model was sent, by tool call id."""
    out: dict[str, str] = {}
    for request in up.chat_requests:
        for message in request.messages:
            if message.get("role") == "tool":
                out[message["tool_call_id"]] = message["content"]
    return out


def offered_tools(up: FakeUpstream) -> set[str]:
    """Names of the tools offered in the agent's (non-router) model calls."""
    names: set[str] = set()
    for request in up.chat_requests:
        tools = {(t.get("function") or {}).get("name") for t in (request.body or {}).get("tools") or []}
        if "bmo_route" not in tools:
            names |= tools
    return names


def new_marker() -> str:
    """Digits that make ``sleep 1000.<marker>`` a valid sleep whose command line no other process has."""
    return str(secrets.randbelow(10**9) + 10**9)


def tree_command(marker: str) -> str:
    """A command that leaves a setsid'd, a double-forked and a nohup'd sleep behind, then sleeps itself."""
    return (f"setsid sleep 1000.{marker} & (sleep 1001.{marker} &) ; nohup sleep 1002.{marker} >/dev/null 2>&1 & "
            f"sleep 1003.{marker}")


def alive_with(marker: str) -> list[int]:
    """PIDs of live (not zombie) processes whose command line holds ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in (b"Z", b"X"):
            pids.append(int(entry))
    return pids


async def wait_gone(marker: str, timeout: float = 10) -> list[int]:
    """Marked processes still alive after ``timeout`` (empty when all are gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (pids := alive_with(marker)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return pids


def kill_marked(marker: str) -> None:
    """Clean up after a failing test: leave nothing behind on the machine either."""
    for pid in alive_with(marker):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


async def wait_tree(marker: str, timeout: float = 20) -> None:
    """Wait until all four sleeps of :func:`tree_command` run: the command really built its tree."""
    async with asyncio.timeout(timeout):
        while not all(alive_with(f"100{i}.{marker}") for i in range(4)):
            await asyncio.sleep(0.05)


# Fixtures shared by the sandbox and crash tests: a module imports the ones it uses by name.
@pytest.fixture(autouse=True)
def bwrap_required() -> None:
    require_bwrap()


@pytest.fixture
def marker():
    """A unique marker for a command tree; whatever still carries it is killed afterwards."""
    value = new_marker()
    yield value
    kill_marked(value)


@pytest_asyncio.fixture
async def model_up():
    """The scripted shell-calling model, served by a fake upstream: ``(model, upstream)``."""
    model = ShellModel()
    up = await FakeUpstream(default=model).start()
    yield model, up
    await up.stop()
