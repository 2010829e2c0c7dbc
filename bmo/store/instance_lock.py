"""Whether this process is the only server on its data dir: an advisory lock held while it serves.

Several ``bmo serve`` processes on one SQLite data dir are not supported. Start-up crash
recovery closes what a dead process left ``running``; a second live server would see the first
one's in-flight rows as such, so recovery runs only while this lock is held. The kernel drops
the lock when its holder dies, kill -9 included: a stale lock file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

LOCK_FILENAME = "serve.lock"
_STATE_KEY = "store.instance_lock"


def sole_server(host: Any) -> bool:
    """True when this host holds its data dir's lock (taken on the first call, kept until :func:`release`)."""
    held = host.state.get(_STATE_KEY)
    if held is None:
        held = host.state[_STATE_KEY] = _try_lock(host.data_dir / LOCK_FILENAME)
    return held >= 0


def release(host: Any) -> None:
    """Give the lock back (at shutdown); a later :func:`sole_server` takes it again."""
    fd = host.state.pop(_STATE_KEY, None)
    if fd is not None and fd >= 0:
        os.close(fd)


def _try_lock(path) -> int:
    """An open descriptor holding an exclusive flock on ``path``, or -1 when another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return -1
    return fd
