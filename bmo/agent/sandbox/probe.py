"""Finding the programs the sandbox needs on the server's PATH, and bwrap's version."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_versions: dict[str, str] = {}
_works: dict[str, bool] = {}


@dataclass(frozen=True)
class Programs:
    """Absolute paths of ``bwrap`` and ``prlimit``, or "" when the PATH lacks them."""

    bwrap: str
    prlimit: str


def find_programs(env: dict[str, str] | None = None) -> Programs:
    """Look ``bwrap`` and ``prlimit`` up on ``env``'s PATH (the server's environment by default)."""
    path = (os.environ if env is None else env).get("PATH", DEFAULT_PATH)
    return Programs(shutil.which("bwrap", path=path) or "", shutil.which("prlimit", path=path) or "")


async def bwrap_version(bwrap: str) -> str:
    """``bwrap --version`` without its program name ("0.8.0"), "" when it cannot run; cached per path."""
    if not bwrap:
        return ""
    if bwrap not in _versions:
        try:
            proc = await asyncio.create_subprocess_exec(
                bwrap, "--version", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        except OSError:
            return ""
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return ""
        _versions[bwrap] = out.decode(errors="replace").strip().removeprefix("bubblewrap").strip()
    return _versions[bwrap]


async def bwrap_failure(bwrap: str) -> str:
    """Why bwrap cannot make a sandbox here ("" when it can): e.g. user namespaces refused to a non-root user.

    Cached per path once it worked: a host that can sandbox keeps that ability.
    """
    if _works.get(bwrap):
        return ""
    failure = await _try_sandbox(bwrap)
    _works[bwrap] = not failure
    return failure


async def _try_sandbox(bwrap: str) -> str:
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env={"PATH": DEFAULT_PATH}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        return f"{bwrap}: {exc.strerror}"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{bwrap} did not finish a test sandbox within 10 s"
    if proc.returncode != 0:
        return err.decode(errors="replace").strip() or f"{bwrap} exited with {proc.returncode}"
    return ""
