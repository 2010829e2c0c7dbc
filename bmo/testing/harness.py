"""Start a real BMO server for a test: in-process on a real socket, or as a ``bmo serve`` process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bmo.config import load_config
from bmo.host import Host, ServeSettings
from bmo.plugins import create_plugin_manager
from bmo.server.app import HOST_KEY, build_host, create_app
from bmo.server.protocol import EnvelopeRunner


@dataclass
class RunningServer:
    url: str  # http://127.0.0.1:PORT
    host: Host  # the started host: store, records and tracer open until stop()
    runner: web.AppRunner
    token: str | None
    stopped: bool = False

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def headers(self, **extra: str) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        out.update(extra)
        return out

    async def stop(self) -> None:
        """Stop like a signal would (shutdown hooks, drain, close the store); a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        await self.runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(
    data_dir: Path,
    *,
    config_toml: str = "",
    token: str | None = "test-token",
    load_plugins: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    plugins: tuple[object, ...] | list[object] = (),
    store_url: str = "",
) -> RunningServer:
    """Serve BMO in this process on 127.0.0.1:<free port> with the given config text.

    ``load_plugins`` is like ``BMO_LOAD_PLUGINS`` (None: every entry point; "": host only);
    ``plugins`` are extra plugin objects (e.g. a test's throwaway class) registered on this
    server's own plugin manager. ``env`` replaces ``os.environ`` for config and tracing.
    ``store_url`` is ``[store] url`` (empty: SQLite in ``data_dir``; see the ``store_url`` fixture).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    files = []
    if config_toml:
        cfg = data_dir / "test-bmo.toml"
        cfg.write_text(config_toml)
        files.append(cfg)
    env = {"XDG_CONFIG_HOME": str(data_dir / "xdg"), **(env or {})}
    pm = create_plugin_manager(load_plugins)
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"test-plugin-{index}-{type(plugin).__name__}")
    config = load_config(
        pm, config_files=tuple(files), env=env, cwd=cwd or data_dir,
        overrides={"storage.data_dir": str(data_dir), **({"store.url": store_url} if store_url else {})},
    )
    port = free_port()
    serve = ServeSettings(addr=f"127.0.0.1:{port}", auth_token=token, allow_no_auth=token is None)
    app = create_app(build_host(config, pm, serve, env=env))
    runner = EnvelopeRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()  # opens the started host and runs the startup hooks
    backlog = config.section("options.http_server").backlog  # as bmo serve does
    await web.TCPSite(runner, "127.0.0.1", port, backlog=backlog).start()
    return RunningServer(f"http://127.0.0.1:{port}", app[HOST_KEY], runner, token)


@dataclass
class ServeProcess:
    """A ``bmo serve`` child process; stderr is collected to a file."""

    proc: subprocess.Popen
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def bmo_command() -> list[str]:
    """How to run the ``bmo`` CLI of this interpreter as a subprocess."""
    return [sys.executable, "-m", "bmo"]


def clean_env(base: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` minus every ``BMO_*``/``OTEL_*`` variable, XDG config/state dirs under ``base``,
    plus ``extra``: a child ``bmo`` sees only what the test sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BMO_", "OTEL_"))}
    env.update(XDG_CONFIG_HOME=str(Path(base) / "xdg-config"), XDG_STATE_HOME=str(Path(base) / "xdg-state"))
    env.update(extra)
    return env


def spawn_serve(
    args: list[str], *, data_dir: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
    wait_ready: bool = True, timeout: float = 30,
) -> ServeProcess:
    """Run ``bmo serve ARGS`` and wait for its ready line (or its exit)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir / "serve.stderr"
    full_env = {**os.environ, "XDG_CONFIG_HOME": str(data_dir / "xdg"), "BMO_DATA_DIR": str(data_dir), **(env or {})}
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [*bmo_command(), "serve", *args], stdout=subprocess.DEVNULL, stderr=err,
            env=full_env, cwd=cwd or data_dir, stdin=subprocess.DEVNULL,
        )
    url = ""
    deadline = time.monotonic() + timeout
    while wait_ready and time.monotonic() < deadline:
        match = re.search(r"BMO serving on (http://\S+)/v1", stderr_path.read_text(errors="replace"))
        if match:
            url = match.group(1)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    return ServeProcess(proc, url, stderr_path)
