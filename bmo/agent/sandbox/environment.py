"""The environment a sandboxed command gets: an allow-list, never the server's own."""

from __future__ import annotations

import os

from bmo.agent.sandbox.config import SandboxOptions
from bmo.agent.sandbox.probe import DEFAULT_PATH

SANDBOX_HOME = "/tmp/home"  # inside the sandbox's private /tmp, so it vanishes with the command
SANDBOX_TMP = "/tmp"


def command_env(options: SandboxOptions, host_env: dict[str, str] | None, *, sandboxed: bool) -> dict[str, str]:
    """PATH, LANG, HOME and TMPDIR, the operator's ``env_allow`` names, then ``env_set``; no ``BMO_*`` ever."""
    host = os.environ if host_env is None else host_env
    env = {"PATH": DEFAULT_PATH, "LANG": host.get("LANG") or "C.UTF-8", "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP}
    if not sandboxed:  # mode "off": the host's own paths, since there is no private /tmp
        env.update(PATH=host.get("PATH", DEFAULT_PATH), HOME=host.get("HOME", "/"), TMPDIR=host.get("TMPDIR", "/tmp"))
    for name in options.env_allow:
        if name in host and not name.startswith("BMO_"):
            env[name] = host[name]
    env.update({k: v for k, v in options.env_set.items() if not k.startswith("BMO_")})
    return env
