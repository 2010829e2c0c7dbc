"""run_shell: one shell command in the workspace, bounded in time and output."""

from __future__ import annotations

import asyncio
import os
import signal

from bmo.agent.tools.base import EXEC, Tool, ToolContext, ToolFailed


class RunShell(Tool):
    name = "run_shell"
    description = "Run a shell command in the workspace directory; returns its exit code and combined output."
    parameters = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command line (run with /bin/sh -c)"},
            "timeout_s": {"type": "number", "description": "Time limit in seconds (default and maximum set by the operator)"},
        },
        "required": ["command"],
    }
    tool_class = EXEC

    def permission_target(self, args: dict) -> str:
        return str(args.get("command", ""))

    async def run(self, args: dict, ctx: ToolContext) -> str:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolFailed("command must be a non-empty string")
        opts = ctx.host.config.section("agent")
        timeout = args.get("timeout_s") or opts.shell_timeout_s
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ToolFailed("timeout_s must be a positive number of seconds")
        timeout = min(float(timeout), opts.shell_max_timeout_s)
        limit = opts.max_tool_output_bytes
        # A session of its own, so a timeout or cancel kills the whole process group.
        proc = await asyncio.create_subprocess_shell(
            command, cwd=str(ctx.workspace), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        output = bytearray()
        dropped = 0

        async def collect() -> None:
            nonlocal dropped
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                room = limit - len(output)
                output.extend(chunk[:max(room, 0)])
                dropped += max(len(chunk) - max(room, 0), 0)
            await proc.wait()

        try:
            await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError:
            _kill(proc)
            await proc.wait()
            text = output.decode("utf-8", errors="replace")
            raise ToolFailed(f"command timed out after {timeout:g}s and was killed. Output so far:\n{text}") from None
        except asyncio.CancelledError:
            _kill(proc)
            raise
        text = output.decode("utf-8", errors="replace")
        if dropped:
            text += f"\n[output truncated: {dropped} more bytes]"
        return f"exit code {proc.returncode}\n{text}"


def _kill(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
