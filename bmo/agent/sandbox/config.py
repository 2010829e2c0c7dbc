"""``[agent.sandbox]``: how every command a tool starts is confined (``bmo config show-sandbox``)."""

from __future__ import annotations

from typing import Literal

import msgspec


class SandboxOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a sandboxed command may see and use; limits apply to each process, 0 means no limit."""

    mode: Literal["bwrap", "off"] = "bwrap"  # "off" runs commands as the server's user, unconfined
    network: Literal["off", "on"] = "off"  # "on" shares the host's network (no host allow-list)
    read_only_binds: list[str] = []  # host paths shown read-only at the same path (e.g. "/opt/toolchain")
    read_write_binds: list[str] = []  # host paths shown read-write at the same path, beside the workspace
    env_allow: list[str] = []  # host variables passed in by name; BMO_* names are never passed
    env_set: dict[str, str] = {}  # variables set inside the sandbox (e.g. PATH), after env_allow
    cpu_time_s: int = 600  # RLIMIT_CPU: CPU seconds per process
    address_space_mb: int = 8192  # RLIMIT_AS: virtual memory per process
    file_size_mb: int = 1024  # RLIMIT_FSIZE: largest file a process may write
    max_processes: int = 1024  # tasks in the command's pids cgroup (else RLIMIT_NPROC, which root ignores)
