"""A pids cgroup per command, so ``max_processes`` holds for a server running as root too.

The kernel never applies RLIMIT_NPROC to uid 0, and bwrap maps the sandbox's root to the
server's own user; a pids cgroup counts every task in it whoever owns it. Used where this
process may create one (cgroup v1 ``pids``, or a v2 cgroup it may enable ``pids`` under),
else the limit stays the rlimit alone. The posture says which.
"""

from __future__ import annotations

import asyncio
import itertools
import os

PREFIX = "bmo-sandbox-"
_V1_ROOT = "/sys/fs/cgroup/pids"
_V2_ROOT = "/sys/fs/cgroup"
_RETRY_S = 1.0
_names = itertools.count(1)
_pending: set[str] = set()  # cgroups whose last tasks were still being reaped when the command ended
_base: str | None = None


def _own_paths() -> tuple[str, str]:
    """This process's v1 ``pids`` cgroup path and v2 path ("" when absent)."""
    v1 = v2 = ""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "pids" in controllers.split(","):
                v1 = path
            elif controllers == "":
                v2 = path
    return v1, v2


def _writable_base() -> str:
    v1, v2 = _own_paths()
    if v1 and os.path.isdir(_V1_ROOT):
        base = os.path.join(_V1_ROOT, v1.lstrip("/"))
        return base if os.access(base, os.W_OK) else ""
    base = os.path.join(_V2_ROOT, v2.lstrip("/"))
    try:
        with open(os.path.join(base, "cgroup.controllers")) as f:
            if "pids" not in f.read().split():
                return ""
        subtree = os.path.join(base, "cgroup.subtree_control")
        with open(subtree) as f:
            enabled = "pids" in f.read().split()
        if not enabled:
            with open(subtree, "w") as f:
                f.write("+pids")  # refused (EBUSY) when this cgroup holds processes and is not a root
    except OSError:
        return ""
    return base if os.access(base, os.W_OK) else ""


def pids_base() -> str:
    """The directory per-command cgroups are made in, or "" when this process may not; decided once."""
    global _base
    if _base is None:
        try:
            _base = _writable_base()
        except (OSError, ValueError):
            _base = ""
        if _base:
            sweep(_base)
    return _base


def _owner_gone(name: str) -> bool:
    """Whether the server that made cgroup ``name`` (``PREFIX<pid>-<n>``) is no longer running."""
    pid = name[len(PREFIX):].split("-", 1)[0]
    return pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}")


def sweep(base: str) -> None:
    """Remove the empty cgroups a crashed server left, and ours pending since their command ended."""
    try:
        left = [os.path.join(base, n) for n in os.listdir(base) if n.startswith(PREFIX) and _owner_gone(n)]
    except OSError:
        left = []
    for path in {*left, *_pending}:
        try:
            os.rmdir(path)
            _pending.discard(path)
        except FileNotFoundError:
            _pending.discard(path)
        except OSError:
            pass  # still has tasks (another server's command, or zombies not yet reaped)


def create(max_processes: int) -> str:
    """A new cgroup allowing ``max_processes`` tasks (threads count); "" when cgroups are not usable here."""
    base = pids_base()
    if not base or max_processes <= 0:
        return ""
    if _pending:
        sweep(base)
    path = os.path.join(base, f"{PREFIX}{os.getpid()}-{next(_names)}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(max_processes))
    except OSError:
        remove(path)
        return ""
    return path


def remove(path: str) -> None:
    """Remove a command's cgroup once it ended; retried later if its last tasks are still being reaped."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        _pending.add(path)
        try:  # the kernel is still tearing the namespace down: look again shortly
            asyncio.get_running_loop().call_later(_RETRY_S, sweep, os.path.dirname(path))
        except RuntimeError:
            pass


def kind() -> str:
    """How ``max_processes`` is enforced here: "cgroup" (pids controller) or "rlimit" (RLIMIT_NPROC alone)."""
    return "cgroup" if pids_base() else "rlimit"


def enter_prefix(path: str) -> list[str]:
    """``sh`` moves itself into ``path`` and then execs the rest, so no child can start outside it."""
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path]
