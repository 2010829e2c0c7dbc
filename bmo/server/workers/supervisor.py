"""The supervisor of ``bmo serve --workers N``: one listening socket, N worker processes, restarts, a clean stop.

The supervisor binds the port once and passes the socket to every worker (``pass_fds``): the
kernel queues connections on that one socket while a worker restarts, so none is refused, and
port 0 works. Workers are started with ``subprocess`` (never a bare fork: this process has
threads), each in its own process group so a terminal's Ctrl-C reaches the supervisor alone,
which then stops them in order.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bmo.cluster.identity import STORE_SHARED_ENV, WORKER_ID_ENV
from bmo.host import HostPlan
from bmo.server.workers.env import (
    LISTEN_FD_ENV,
    READY_FD_ENV,
    SUPERVISOR_NAME,
    SUPERVISOR_PID_ENV,
)
from bmo.store import collect_migrations, database_for
from bmo.store.instance_lock import LOCK_FILENAME, _try_lock
from bmo.tracing.records import WORKER_RECORDS_ENV, RecordLog

BACKOFF_FIRST_S = 0.5  # the first restart of a crashed worker waits this long, doubling on quick repeats
BACKOFF_MAX_S = 10.0
QUICK_EXIT_S = 10.0  # a worker that dies sooner than this after starting backs off further
MAX_START_FAILURES = 5  # a restarted worker failing to become ready this many times in a row stops the server
START_TIMEOUT_S = 60.0  # a worker not ready by then is killed and counts as a failed start
KILL_MARGIN_S = 5.0  # past the workers' own shutdown grace, stragglers are killed


class SupervisorStopped(Exception):
    """The workers could not be kept running; the message says which one and what to look at."""


@dataclass
class WorkerSlot:
    """One of the N workers, across its restarts."""

    worker_id: str
    proc: subprocess.Popen | None = None
    ready_fd: int = -1
    spawned_at: float = 0.0
    ready: bool = False
    starts: int = 0
    failures: int = 0  # start-ups in a row that ended before the worker was ready
    quick_exits: int = 0  # exits in a row within QUICK_EXIT_S of starting
    restart_at: float | None = None


def exit_fields(returncode: int) -> dict:
    """``exit_code`` for a normal exit, ``signal`` (its name) for a killed process."""
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": str(-returncode)}
    return {"exit_code": returncode}


def describe_exit(returncode: int) -> str:
    fields = exit_fields(returncode)
    return f"killed by {fields['signal']}" if "signal" in fields else f"exit code {fields['exit_code']}"


def bind_listener(plan: HostPlan) -> socket.socket:
    """The one listening socket every worker accepts on (OSError when the address cannot be bound)."""
    options = plan.config.section("options.http_server")
    family = socket.getaddrinfo(plan.serve.host, plan.serve.port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((plan.serve.host, plan.serve.port), family=family, backlog=options.backlog)


def migrate(plan: HostPlan) -> None:
    """Every plugin's migrations, once, before any worker opens the store."""

    async def run() -> None:
        db = database_for(plan.config.section("store").url, plan.data_dir)
        try:
            await db.open(collect_migrations(plan.pm))
        finally:
            await db.close()

    asyncio.run(run())


class Supervisor:
    """Runs ``count`` workers (``command(port)`` is a worker's argv) on one socket until SIGINT/SIGTERM."""

    def __init__(self, plan: HostPlan, count: int, command: Callable[[int], Sequence[str]], env: Mapping[str, str]):
        self.plan = plan
        self.command = command  # the worker's argv for the bound port
        self.base_env = dict(env)
        self.grace = plan.config.section("options.http_server").shutdown_grace_s
        self.slots = [WorkerSlot(f"w{k}") for k in range(1, count + 1)]
        self.stopping = False
        self.sock: socket.socket | None = None
        self.records: RecordLog | None = None
        self.lock_fd = -1
        self.selector = selectors.DefaultSelector()
        self._previous_handlers: dict[int, object] = {}

    # -- the whole life ----------------------------------------------------------------
    def run(self, on_ready: Callable[[int], None]) -> None:
        """Serve until a signal; ``on_ready(port)`` once every worker accepts. Raises SupervisorStopped."""
        self._install_signals()
        try:
            self.sock = bind_listener(self.plan)
            try:
                tracing = self.plan.config.section("tracing")
                self.records = RecordLog(self.plan.log_dir, max_bytes=tracing.log_max_bytes,
                                         backups=tracing.log_backups, fields={"worker": SUPERVISOR_NAME})
                try:
                    self._serve(on_ready)
                finally:
                    self._stop_all()
                    if self.lock_fd >= 0:  # only once no worker is left that could still be writing
                        os.close(self.lock_fd)
                        self.lock_fd = -1
                    self.records.emit("serve.supervisor_stopped", pid=os.getpid())
                    self.records.close()
            finally:
                self.sock.close()
        finally:
            self._restore_signals()

    def _serve(self, on_ready: Callable[[int], None]) -> None:
        migrate(self.plan)
        # Held while the server lives: a plain `bmo serve` on this data dir then skips its start-up recovery
        # (it would close the workers' live runs). The workers share the store: leases close a dead one's runs.
        self.lock_fd = _try_lock(self.plan.data_dir / LOCK_FILENAME)
        for slot in self.slots:
            self._spawn(slot)
        self._await_ready(self.slots)
        if self.stopping:
            return
        port = self.sock.getsockname()[1]
        self.records.emit("serve.supervisor_started", pid=os.getpid(), addr=self.plan.serve.addr, port=port,
                          workers=len(self.slots))
        on_ready(port)
        self._watch()

    # -- starting workers ----------------------------------------------------------------
    def _spawn(self, slot: WorkerSlot) -> None:
        read_end, write_end = os.pipe()
        listen_fd = self.sock.fileno()
        env = {
            **self.base_env, WORKER_ID_ENV: slot.worker_id, STORE_SHARED_ENV: "1",
            WORKER_RECORDS_ENV: slot.worker_id, LISTEN_FD_ENV: str(listen_fd), READY_FD_ENV: str(write_end),
            SUPERVISOR_PID_ENV: str(os.getpid()),
        }
        try:
            argv = list(self.command(self.sock.getsockname()[1]))
            slot.proc = subprocess.Popen(argv, env=env, pass_fds=(listen_fd, write_end), stdin=subprocess.DEVNULL,
                                         process_group=0)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        slot.ready_fd = read_end
        self.selector.register(read_end, selectors.EVENT_READ, slot)
        slot.spawned_at = time.monotonic()
        slot.ready = False
        slot.restart_at = None
        slot.starts += 1

    def _await_ready(self, slots: list[WorkerSlot]) -> None:
        """Wait until ``slots`` all serve; a worker that exits first stops the launch."""
        while not self.stopping and not all(s.ready for s in slots):
            self._read_ready(0.05)
            for slot in slots:
                code = slot.proc.poll() if slot.proc is not None else None
                if code is not None and not slot.ready:
                    self._close_ready(slot)
                    slot.proc = None
                    raise SupervisorStopped(
                        f"worker {slot.worker_id} exited during start-up ({describe_exit(code)}); "
                        "its message above says why")
                if time.monotonic() - slot.spawned_at > START_TIMEOUT_S and not slot.ready:
                    raise SupervisorStopped(f"worker {slot.worker_id} was not ready after {START_TIMEOUT_S:g}s")

    def _read_ready(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            slot: WorkerSlot = key.data
            try:
                data = os.read(slot.ready_fd, 64)
            except BlockingIOError:
                continue
            if b"ready" in data:
                slot.ready = True
                slot.failures = 0
                self.records.emit("serve.worker_started", worker=slot.worker_id, pid=slot.proc.pid,
                                  starts=slot.starts, restart=slot.starts > 1,
                                  startup_ms=round((time.monotonic() - slot.spawned_at) * 1000, 1))
            self._close_ready(slot)  # one message, or EOF from a worker that died first

    def _close_ready(self, slot: WorkerSlot) -> None:
        if slot.ready_fd >= 0:
            self.selector.unregister(slot.ready_fd)
            os.close(slot.ready_fd)
            slot.ready_fd = -1

    # -- keeping them running ------------------------------------------------------------
    def _watch(self) -> None:
        while not self.stopping:
            self._read_ready(0.1)
            now = time.monotonic()
            for slot in self.slots:
                if self.stopping:
                    break
                if slot.proc is not None:
                    code = slot.proc.poll()
                    if code is not None:
                        self._exited(slot, code, now)
                    elif not slot.ready and now - slot.spawned_at > START_TIMEOUT_S:
                        slot.proc.kill()  # a worker stuck in start-up: its exit is handled next pass
                elif slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)

    def _exited(self, slot: WorkerSlot, code: int, now: float) -> None:
        was_ready, pid = slot.ready, slot.proc.pid
        self._close_ready(slot)
        slot.proc = None
        lived = now - slot.spawned_at
        slot.quick_exits = slot.quick_exits + 1 if lived < QUICK_EXIT_S else 0
        if not was_ready:
            slot.failures += 1
        delay = min(BACKOFF_FIRST_S * 2 ** max(slot.quick_exits - 1, 0), BACKOFF_MAX_S)
        self.records.emit("serve.worker_exited", "warn", worker=slot.worker_id, pid=pid, **exit_fields(code),
                          uptime_s=round(lived, 1), during_startup=not was_ready, restart_in_s=delay)
        if slot.failures >= MAX_START_FAILURES:
            raise SupervisorStopped(
                f"worker {slot.worker_id} failed to start {slot.failures} times in a row "
                f"(last: {describe_exit(code)}); "
                "stopping the server. Its messages above say why; fix that and start bmo serve again")
        slot.restart_at = now + delay

    # -- stopping --------------------------------------------------------------------
    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains like one server does), then kill what outlives the grace."""
        live = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for slot in live:
            try:
                slot.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace + KILL_MARGIN_S
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                code = slot.proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                code = slot.proc.wait()
                self.records.emit("serve.worker_killed", "warn", worker=slot.worker_id, pid=slot.proc.pid,
                                  reason=f"still running {self.grace + KILL_MARGIN_S:g}s after SIGTERM")
            if slot in live:
                self.records.emit("serve.worker_stopped", worker=slot.worker_id, pid=slot.proc.pid,
                                  **exit_fields(code))
            self._close_ready(slot)
            slot.proc = None

    def _install_signals(self) -> None:
        def on_signal(signum, frame) -> None:
            if self.stopping:  # a second Ctrl-C while the workers drain: say what is happening
                print(f"BMO is already stopping (waiting at most {self.grace:g}s for in-flight requests)",
                      file=sys.stderr, flush=True)
            self.stopping = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[sig] = signal.signal(sig, on_signal)

    def _restore_signals(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self.selector.close()
