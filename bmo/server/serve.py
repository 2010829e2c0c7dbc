"""Running the server: the security checks before binding, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import sys
import tempfile

from aiohttp import web

from bmo.host import HostPlan, ServeSettings
from bmo.net import split_addr
from bmo.server.app import HOST_KEY, create_app
from bmo.server.protocol import EnvelopeRunner
from bmo.server.workers.worker import WorkerRole

NON_LOOPBACK_WARNING = (
    "warning: BMO is bound to a non-loopback address ({addr}). The bearer token is the only "
    "boundary: keep BMO on loopback, or put it behind a trusted reverse proxy / access-control layer."
)


class ServeRefused(Exception):
    """A configuration the server must not start with; the message says how to fix it."""


def check_boundary(serve: ServeSettings) -> str | None:
    """Refuse unsafe combinations; return a warning to print for a risky but allowed one."""
    try:
        split_addr(serve.addr)
    except ValueError as exc:
        raise ServeRefused(str(exc)) from None
    if serve.auth_token is not None and not serve.auth_token.strip():
        raise ServeRefused("the auth token is empty; pass a non-empty --auth-token or BMO_AUTH_TOKEN")
    if serve.auth_token is None and not serve.allow_no_auth:
        raise ServeRefused(
            "refusing to start without authentication. Either pass --auth-token TOKEN "
            "(or set BMO_AUTH_TOKEN) so clients must send 'Authorization: Bearer TOKEN', "
            "or pass --allow-no-auth to run an unauthenticated server on a loopback address "
            "(development only)."
        )
    if serve.auth_token is None and not serve.loopback:
        raise ServeRefused(
            f"--allow-no-auth is only allowed on a loopback address, not {serve.addr}. "
            "Bind 127.0.0.1 (e.g. --addr 127.0.0.1:9000) or set --auth-token."
        )
    if serve.auth_token is not None and not serve.loopback:
        return NON_LOOPBACK_WARNING.format(addr=serve.addr)
    return None


def check_data_dir(plan: HostPlan) -> None:
    """Refuse to start on a data dir BMO cannot write (read-only file system, no permission).

    A full disk is not refused: the server starts and degrades (see docs/serving.md).
    """
    for directory in dict.fromkeys((plan.data_dir, plan.log_dir)):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".bmo-write-check-", dir=directory)  # an empty file needs no space
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                continue
            raise ServeRefused(
                f"the data dir {directory} is not writable ({exc.strerror or exc}). BMO keeps its database and "
                "trace records there: pass --data-dir (or set BMO_DATA_DIR) to a writable directory, or fix the "
                "mount or permissions of this one."
            ) from None


def ready_message(plan: HostPlan, port: int, workers: int = 1) -> str:
    """The one start-up line tests and scripts read the address from."""
    shown = f"[{plan.serve.host}]" if ":" in plan.serve.host else plan.serve.host
    auth = "bearer token" if plan.serve.auth_token else "none (loopback only)"
    many = f"; workers: {workers}" if workers > 1 else ""
    return f"BMO serving on http://{shown}:{port}/v1 (auth: {auth}; data: {plan.data_dir}{many})"


async def serve_forever(plan: HostPlan, *, ready_line: bool = True, worker: WorkerRole | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting, finish or cancel in-flight work, close.

    A ``worker`` of ``bmo serve --workers N`` serves its supervisor's listening socket and tells
    the supervisor when it is ready instead of printing the start-up line.
    """
    app = create_app(plan)
    if worker is not None:
        worker.prepare(app)
    grace = plan.config.section("options.http_server").shutdown_grace_s
    runner = EnvelopeRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():  # a second Ctrl-C while draining: say what is happening, keep it clean
            print(f"BMO is already stopping (waiting at most {grace:g}s for in-flight requests)", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        backlog = plan.config.section("options.http_server").backlog
        if worker is None:
            site = web.TCPSite(runner, plan.serve.host, plan.serve.port, reuse_address=True, backlog=backlog)
        else:
            site = web.SockSite(runner, worker.sock)
        await site.start()
        # A request allocates thousands of short-lived objects: at CPython's 700 the young generation was
        # collected several times a request (about 6% of a session turn's CPU); at 10,000 about once in three.
        gc.set_threshold(10_000, 10, 10)
        # Everything alive now lives as long as the server: keep it out of every future GC pass.
        gc.collect()
        gc.freeze()
        if worker is not None:
            worker.ready()
        elif ready_line:
            # With port 0 the kernel chose one: report the real port, tests and scripts read it here.
            port = runner.addresses[0][1] if runner.addresses else plan.serve.port
            print(ready_message(plan, port), file=sys.stderr, flush=True)
        await stop.wait()
        app[HOST_KEY].emit("bmo.stopping", reason="signal")
    finally:
        try:
            await runner.cleanup()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
