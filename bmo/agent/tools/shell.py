"""run_shell: one shell command in the workspace, inside the sandbox, bounded in time and output."""

from __future__ import annotations

from bmo.agent.sandbox import Sandbox
from bmo.agent.tools.base import EXEC, Tool, ToolContext, ToolFailed


class RunShell(Tool):
    name = "run_shell"
    description = (
        "Run a shell command in the workspace directory; returns its exit code and combined output. "
        "It runs in a sandbox: only the workspace is writable, and background processes end with the command."
    )
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
        result = await Sandbox.for_host(ctx.host).run(
            ["/bin/sh", "-c", command], workspace=ctx.workspace, timeout=timeout,
            output_limit=opts.max_tool_output_bytes,
        )
        text = result.output.decode("utf-8", errors="replace")
        if result.timed_out:
            raise ToolFailed(f"command timed out after {timeout:g}s and was killed. Output so far:\n{text}",
                             error_type="timeout")
        if result.dropped:
            text += f"\n[output truncated: {result.dropped} more bytes]"
        return f"exit code {result.exit_code}\n{text}"
