"""What the operator is told about the sandbox: the posture section and the one start-up warning."""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

from bmo.agent.sandbox import cgroup
from bmo.agent.sandbox.config import SandboxOptions
from bmo.agent.sandbox.probe import bwrap_failure, bwrap_version
from bmo.agent.sandbox.sandbox import BWRAP_MISSING, Sandbox

MODE_OFF = (
    "[agent.sandbox] mode = \"off\": tool commands run unconfined as the server's user, with its files and "
    "network. Set mode = \"bwrap\" (install the Debian package 'bubblewrap') to sandbox them."
)


STATE_KEY = "bmo.agent.sandbox"  # host.state: bwrap's error from the start-up test sandbox ("" when it worked)
_SECRET_NAME = re.compile(r"token|secret|passw|key|auth|credential|cookie", re.IGNORECASE)


def shown_options(options: SandboxOptions) -> dict[str, Any]:
    """``[agent.sandbox]`` for ``bmo config show-sandbox``; an ``env_set`` value with a secret-looking name is "set"."""
    shown = msgspec.to_builtins(options)
    shown["env_set"] = {k: "set" if _SECRET_NAME.search(k) else v for k, v in options.env_set.items()}
    return shown


async def startup_warning(sandbox: Sandbox) -> tuple[str, str, str] | None:
    """``(record msg, text, bwrap's error)`` when commands run unconfined or cannot run; None when all is well."""
    if sandbox.options.mode == "off":
        return "agent.sandbox.off", MODE_OFF, ""
    if not sandbox.programs.bwrap:
        return "agent.sandbox.unavailable", "run_shell is not offered to the model: " + BWRAP_MISSING, ""
    failure = await bwrap_failure(sandbox.programs.bwrap)
    if failure:
        text = (f"bwrap cannot create a sandbox here ({failure}), so every run_shell command will fail. Allow user "
                "namespaces for bwrap (see docs/agent.md#sandbox), or set [agent.sandbox] mode = \"off\".")
        return "agent.sandbox.broken", text, failure
    return None


async def posture_section(sandbox: Sandbox, bwrap_error: str | None = None) -> dict[str, Any]:
    """Mode, network, whether bwrap was found (path, version) and worked at start, exec tools offered, limits."""
    options = sandbox.options
    return {
        "mode": options.mode,
        "network": options.network,
        "bwrap_found": bool(sandbox.programs.bwrap),
        "bwrap_path": sandbox.programs.bwrap,
        "bwrap_version": await bwrap_version(sandbox.programs.bwrap),
        "bwrap_error": bwrap_error,  # None: not tried at start (mode "off" or no bwrap); "": it worked
        "exec_tools_offered": sandbox.can_run,
        "read_only_binds": list(options.read_only_binds),
        "read_write_binds": list(options.read_write_binds),
        "env_allow": list(options.env_allow),
        "env_set": sorted(options.env_set),  # names only: a value may be a credential
        "limits": {
            "enforced": bool(sandbox.programs.prlimit),
            "cpu_time_s": options.cpu_time_s,
            "address_space_mb": options.address_space_mb,
            "file_size_mb": options.file_size_mb,
            "max_processes": options.max_processes,
            "max_processes_by": cgroup.kind(),  # "rlimit" alone does not hold a server running as root
        },
    }


async def announce(host: Any) -> None:
    """At start: test the sandbox once, keep bwrap's error for the posture, warn (record + stderr) if it cannot run."""
    sandbox = Sandbox.for_host(host)
    warning = await startup_warning(sandbox)
    if sandbox.options.mode == "bwrap" and sandbox.programs.bwrap:
        host.state[STATE_KEY] = warning[2] if warning else ""
    if warning is not None:
        msg, text, _ = warning
        host.emit(msg, "warn", hint=text)
        from bmo.guidance import speaks_at_startup

        if speaks_at_startup(host.env):  # one warning per server, not one per worker
            print(f"warning: {text}", file=sys.stderr, flush=True)


async def posture_for(host: Any) -> dict[str, Any]:
    """The posture's ``sandbox`` section for ``host``."""
    return await posture_section(Sandbox.for_host(host), host.state.get(STATE_KEY))
