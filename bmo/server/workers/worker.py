"""A worker's side of ``bmo serve --workers N``: the inherited socket, the ready report, dying with its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from collections.abc import Mapping

from aiohttp import web

from bmo.cluster.identity import WORKER_ID_ENV
from bmo.server.workers.env import LISTEN_FD_ENV, READY_FD_ENV, SUPERVISOR_PID_ENV

WORKER_HEADER = "X-BMO-Worker"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_current: WorkerRole | None = None


class WorkerStats:
    """What this worker is doing now and has done since it started, for its heartbeat row."""

    __slots__ = ("in_flight", "requests", "server_errors")

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self.server_errors = 0


class WorkerRole:
    """This process serves the supervisor's socket as worker ``worker_id``."""

    def __init__(self, worker_id: str, sock: socket.socket, ready_fd: int):
        self.worker_id = worker_id
        self.sock = sock
        self.ready_fd = ready_fd
        self.stats = WorkerStats()

    def prepare(self, app: web.Application) -> None:
        """Count requests and name this worker on every response (before the app freezes)."""
        stats, name = self.stats, self.worker_id

        @web.middleware
        async def count_requests(request: web.Request, handler) -> web.StreamResponse:
            stats.in_flight += 1
            try:
                response = await handler(request)
                if response.status >= 500:
                    stats.server_errors += 1
                return response
            finally:
                stats.in_flight -= 1
                stats.requests += 1

        async def name_worker(request: web.Request, response: web.StreamResponse) -> None:
            response.headers[WORKER_HEADER] = name

        app.middlewares.insert(0, count_requests)
        app.on_response_prepare.append(name_worker)

    def ready(self) -> None:
        """Tell the supervisor this worker accepts connections (its socket is being served)."""
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, b"ready\n")
            os.close(self.ready_fd)
        except OSError:
            pass  # the supervisor is gone; the parent-death signal ends this worker
        self.ready_fd = -1


def worker_role(env: Mapping[str, str] | None = None) -> WorkerRole | None:
    """The role the supervisor gave this process, or None for a plain ``bmo serve``."""
    global _current
    env = os.environ if env is None else env
    if LISTEN_FD_ENV not in env:
        return None
    sock = socket.socket(fileno=int(env[LISTEN_FD_ENV]))
    _current = WorkerRole(env.get(WORKER_ID_ENV, f"pid{os.getpid()}"), sock, int(env.get(READY_FD_ENV, "-1")))
    return _current


def current_role() -> WorkerRole | None:
    """This process's worker role, once :func:`worker_role` read it."""
    return _current


def die_with_parent(env: Mapping[str, str] | None = None) -> bool:
    """Ask the kernel to send SIGTERM when the supervisor dies (kill -9 included); False if it already has."""
    env = os.environ if env is None else env
    parent = int(env.get(SUPERVISOR_PID_ENV, "0") or 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    # The parent may have died before the request took effect: then nobody would send the signal.
    return not parent or os.getppid() == parent
