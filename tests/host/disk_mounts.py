"""Small real file systems for the full- and read-only-disk tests: a tmpfs mounted for one test.

Mounting needs root. As root (CI runs the suite as root, with CI=true) the tests run; a
developer who is not root skips them, but CI never does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler.bin"


def require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the full-disk tests mount a tmpfs and must run as root in CI")
        pytest.skip("mounting a tmpfs needs root (CI runs this as root)")


@contextlib.contextmanager
def tmpfs(directory: Path, size: str = "3m") -> Iterator[Path]:
    """``mount -t tmpfs -o size=SIZE``: a real file system that really fills; unmounted afterwards."""
    require_root()
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        # Lazy: a file a failed test left open must not leave the mount behind.
        subprocess.run(["umount", "-l", str(directory)], check=False)


def remount_read_only(directory: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)


def fill(directory: Path) -> int:
    """Write a filler file until the file system says ENOSPC; returns its size."""
    chunk = b"\0" * 65536
    written = 0
    with open(directory / FILLER, "ab", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        # Whatever sub-chunk space is left goes too.
        for size in (4096, 512, 1):
            while True:
                try:
                    written += fh.write(b"\0" * size)
                except OSError:
                    break
    return written


def free(directory: Path) -> None:
    (directory / FILLER).unlink()
