"""Running one process with bounded output and time, and killing its whole tree on timeout or cancel."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

_REAP_WAIT_S = 5.0  # how long a cancelled run waits for the killed process to be reaped


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code (None when it timed out) and the output kept."""

    exit_code: int | None
    output: bytes
    dropped: int  # output bytes past the limit, not kept
    timed_out: bool


async def run_bounded(
    argv: Sequence[str], *, cwd: str, env: dict[str, str], timeout: float, output_limit: int,
    pass_fds: Sequence[int] = (),
) -> CommandResult:
    """Run ``argv`` with stdout and stderr combined; kill its process group at ``timeout`` or on cancel.

    It is started from the event loop's thread (never a worker thread), so bwrap's parent-death
    signal fires only when the server itself dies.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, pass_fds=tuple(pass_fds),
    )
    output = bytearray()
    dropped = 0

    async def collect() -> None:
        nonlocal dropped
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            room = max(output_limit - len(output), 0)
            output.extend(chunk[:room])
            dropped += len(chunk) - len(chunk[:room])
        await proc.wait()

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        kill_group(proc.pid)
        await proc.wait()
        return CommandResult(None, bytes(output), dropped, True)
    except asyncio.CancelledError:
        kill_group(proc.pid)
        try:  # reap it, so a stopping server leaves no zombie either
            await asyncio.wait_for(asyncio.shield(proc.wait()), _REAP_WAIT_S)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        raise
    return CommandResult(proc.returncode, bytes(output), dropped, False)


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads; with bwrap that ends the sandbox's PID namespace too."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
