"""The bwrap command line: what a sandboxed command sees of the host, and nothing more."""

from __future__ import annotations

import os
from collections.abc import Iterable

from bmo.agent.sandbox.config import SandboxOptions
from bmo.agent.sandbox.environment import SANDBOX_HOME, SANDBOX_TMP

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few /etc entries a shell, the dynamic linker, TLS clients and common tools read.
ETC_ENTRIES = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "ssl", "pki", "crypto-policies",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf", "host.conf",
    "gai.conf", "protocols", "services", "mime.types", "os-release", "debian_version",
)
NETWORK_ETC = ("resolv.conf", "hosts")  # bound only when the network is on
HOSTNAME = "bmo-sandbox"
# Written into the sandbox instead of the host's files: one user, no host accounts, no secrets.
PASSWD = f"root:x:0:0:sandbox:{SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def synthetic_files(network: str) -> dict[str, bytes]:
    """Files made up for the sandbox, by their path inside it."""
    files = {"/etc/passwd": PASSWD.encode(), "/etc/group": GROUP.encode()}
    if network != "on":
        files["/etc/hosts"] = HOSTS.encode()
    return files


def _system_args() -> list[str]:
    """Read-only system directories (merged-/usr symlinks kept as symlinks) and the minimal /etc."""
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _absolute(paths: Iterable[str], key: str) -> list[str]:
    out = []
    for raw in paths:
        path = os.path.expanduser(raw)
        if not os.path.isabs(path):
            raise ValueError(f"[agent.sandbox] {key} entry {raw!r} is not an absolute path; write it as /full/path")
        out.append(os.path.normpath(path))
    return out


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def bwrap_argv(
    bwrap: str, options: SandboxOptions, *, workspace: str, command: list[str],
    env: dict[str, str], data_fds: dict[str, int], hidden: Iterable[str] = (),
) -> list[str]:
    """The full argv: namespaces, mounts, environment, then ``command`` run in ``workspace``.

    ``data_fds`` maps a path inside the sandbox to a readable fd holding its content;
    ``hidden`` are host paths (data dir, config files) masked wherever a bind would show them.
    Raises ``ValueError`` naming the key for a relative extra bind.
    """
    ro = _absolute(options.read_only_binds, "read_only_binds")
    rw = _absolute(options.read_write_binds, "read_write_binds")
    args = [bwrap, "--unshare-all"]
    if options.network == "on":
        args.append("--share-net")
    # The parent-death signal ties the sandbox's life to the thread that forked bwrap: the event loop's.
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", HOSTNAME, "--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    args += _system_args()
    if options.network == "on":
        for name in NETWORK_ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for dest, fd in data_fds.items():
        args += ["--ro-bind-data", str(fd), dest]
    args += ["--tmpfs", SANDBOX_TMP, "--dir", SANDBOX_HOME, "--proc", "/proc", "--dev", "/dev"]
    for path in ro:
        args += ["--ro-bind", path, path]
    args += ["--bind", workspace, workspace]
    for path in rw:
        args += ["--bind", path, path]
    visible, masked = [workspace, *ro, *rw], []
    for path in sorted({os.path.normpath(os.path.abspath(p)) for p in hidden}):
        # A mask inside an earlier one would show its own mount point in the empty tmpfs.
        if not _inside(path, visible) or _inside(path, masked):
            continue
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.lexists(path):
            args += ["--ro-bind", "/dev/null", path]
        masked.append(path)
    args += ["--chdir", workspace, *command]
    return args


def prlimit_prefix(prlimit: str, options: SandboxOptions) -> list[str]:
    """``prlimit --cpu=... --`` for the limits that are set (0 means none); [] when nothing is limited."""
    mib = 1024 * 1024
    flags = [f"--cpu={options.cpu_time_s}" if options.cpu_time_s > 0 else "",
             f"--as={options.address_space_mb * mib}" if options.address_space_mb > 0 else "",
             f"--fsize={options.file_size_mb * mib}" if options.file_size_mb > 0 else "",
             f"--nproc={options.max_processes}" if options.max_processes > 0 else ""]
    flags = [f for f in flags if f]
    return [prlimit, *flags, "--"] if flags and prlimit else []
