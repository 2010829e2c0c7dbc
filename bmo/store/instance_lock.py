"""Whether this process is the only server on its data dir: an advisory lock held while it serves.

Several ``bmo serve`` processes on one SQLite data dir are not supported. Start-up crash
recovery closes what a dead process left ``running``; a second live server would see the first
one's in-flight rows as such, so recovery runs only while this lock is held. The kernel drops
the lock when its holder dies, kill -9 included: a stale lock file never blocks a restart.
Under ``bmo serve --workers N`` the supervisor holds it while its workers serve.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from typing import Any

LOCK_FILENAME = "serve.lock"
_STATE_KEY = "store.instance_lock"


def sole_server(host: Any) -> bool:
    """True when this host holds its data dir's lock (taken on the first call, kept until :func:`release`)."""
    held = host.state.get(_STATE_KEY)
    if held is None:
        held = host.state[_STATE_KEY] = _try_lock(host.data_dir / LOCK_FILENAME)
    return held >= 0


async def recover_if_sole(host: Any, owner: str, job: Callable, closed_key: str) -> dict[str, int] | None:
    """Run a start-up recovery ``job`` through the writer and record ``<owner>.recovered`` with its counts.

    Skipped (None, with an ``<owner>.recovery_skipped`` warning) while another server holds the data dir;
    the record is a warning when ``counts[closed_key]`` says the job closed something.
    """
    started = time.monotonic()
    from bmo.cluster import store_is_shared

    if store_is_shared(host.config):  # a peer's unfinished runs may be live: closed only once their lease expired
        host.emit(f"{owner}.recovery_skipped", "info", reason="the store is shared with other servers",
                  hint="runs of a server that died are closed when their session lease expires (bmo.cluster)")
        return None
    if not sole_server(host):
        host.emit(f"{owner}.recovery_skipped", "warn", reason="another bmo serve holds this data dir",
                  hint="one server per data dir is supported; stop the other one")
        return None
    counts = await host.db.run_write(job)
    host.emit(f"{owner}.recovered", "warn" if counts[closed_key] else "info", **counts,
              elapsed_ms=round((time.monotonic() - started) * 1000, 1))
    return counts


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
