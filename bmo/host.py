"""The host in two stages: the plan known before serving, and the started host plugins reach as ``host``."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmo.config import Config
from bmo.net import TrustedProxies, is_loopback_host, split_addr
from bmo.registry import Registry, maybe_await
from bmo.cluster.identity import WORKER_ID_ENV
from bmo.store import DB_FILENAME, BatchingStore, Migration, database_for
from bmo.tracing.records import RecordLog, records_dir

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer


@dataclass
class ServeSettings:
    """What ``bmo serve`` decided from flags and env: never part of the printed config."""

    addr: str
    auth_token: str | None = None
    allow_no_auth: bool = False

    @property
    def host(self) -> str:
        return split_addr(self.addr)[0]

    @property
    def port(self) -> int:
        return split_addr(self.addr)[1]

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def resolve_data_dir(config: Config, env: dict[str, str] | None = None) -> Path:
    """``[storage] data_dir`` (also --data-dir / BMO_DATA_DIR), else ``$XDG_STATE_HOME/bmo``."""
    from bmo.config.loader import default_data_dir

    env = dict(os.environ if env is None else env)
    configured = config.section("storage").data_dir
    # Absolute, so what the server prints and records is where the data really is.
    return (Path(configured).expanduser() if configured else default_data_dir(env)).absolute()


@dataclass
class HostPlan:
    """What is known before serving: config, plugins and what they registered, where data goes.

    Hooks called while the app is built (``bmo_routes``, ``bmo_tools``, ...) get this; nothing
    here is opened yet, so it has no store, records or tracer.
    """

    config: Config
    pm: Any
    data_dir: Path
    serve: ServeSettings
    registry: Registry = field(default_factory=Registry)
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    # The environment the host reads OTEL_* and BMO_* from; None means os.environ.
    env: dict[str, str] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(eq=False)
class Host:
    """A started server: its plan plus the store, records and tracer, all open until it stops.

    ``bmo_startup``, ``bmo_shutdown`` and every request handler (``get_host(request)``) get this.
    """

    plan: HostPlan
    db: BatchingStore  # SQLite in the data dir, or PostgreSQL at [store] url
    records: RecordLog
    tracer: Tracer
    tracer_provider: TracerProvider
    # Per-plugin runtime state, keyed by plugin name.
    state: dict[str, Any] = field(default_factory=dict)

    # -- the plan's parts, for plugins that only know ``host`` --------------------------
    @property
    def config(self) -> Config:
        return self.plan.config

    @property
    def pm(self) -> Any:
        return self.plan.pm

    @property
    def registry(self) -> Registry:
        return self.plan.registry

    @property
    def data_dir(self) -> Path:
        return self.plan.data_dir

    @property
    def serve(self) -> ServeSettings:
        return self.plan.serve

    @property
    def trusted_proxies(self) -> TrustedProxies:
        return self.plan.trusted_proxies

    @property
    def env(self) -> dict[str, str] | None:
        return self.plan.env

    @property
    def db_path(self) -> Path:
        return self.plan.db_path

    @property
    def log_dir(self) -> Path:
        return self.plan.log_dir

    def emit(self, msg: str, level: str = "info", **fields: Any) -> dict:
        """Write a trace record (JSON line + ``bmo_trace_record`` hook); levels: debug, info, warn, error."""
        return self.records.emit(msg, level, **fields)

    async def posture(self) -> dict[str, Any]:
        """The posture snapshot: one section per plugin that contributes one."""
        snapshot: dict[str, Any] = {}
        for section, build in self.registry.posture.items():
            snapshot[section] = await maybe_await(build(self))
        return snapshot

    async def run_slash(self, line: str) -> Any:
        """Run a slash command line (``/name args``); returns text or a Rich renderable."""
        name, _, args = line.strip().lstrip("/").partition(" ")
        command = self.registry.slash(name)
        if command is None:
            known = ", ".join(f"/{n}" for n in sorted(self.registry.slash_commands))
            return f"Unknown command /{name}. Known: {known or 'none'}"
        return await maybe_await(command.run(self, args.strip()))

    async def render_slash(self, line: str, width: int = 100) -> str:
        return render_text(await self.run_slash(line), width)

    async def sidebar(self) -> list[tuple[str, str]]:
        return [(ind.label, str(await maybe_await(ind.value(self)))) for ind in self.registry.sidebar]


async def open_host(plan: HostPlan, migrations: Iterable[Migration]) -> Host:
    """Open records, tracer and store (in that order) for ``plan``; what opened is closed again on failure."""
    from bmo.tracing.otel import create_tracer_provider, get_tracer

    tracing = plan.config.section("tracing")
    db = database_for(plan.config.section("store").url, plan.data_dir)  # a bad url fails before anything opens
    # Owner-only: sessions, ledgers and records carry prompts and requester names.
    plan.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = os.environ if plan.env is None else plan.env
    worker = env.get(WORKER_ID_ENV)  # every record says which worker wrote it
    records = RecordLog(
        records_dir(plan.log_dir, env), max_bytes=tracing.log_max_bytes, backups=tracing.log_backups,
        stderr=tracing.log_stderr, hook=plan.pm.hook.bmo_trace_record, fields={"worker": worker} if worker else None,
    )
    try:
        provider = create_tracer_provider(tracing, plan.env)
    except BaseException:
        await asyncio.to_thread(records.close)
        raise
    host = Host(plan, db, records, get_tracer(provider), provider)
    try:
        await host.db.open(migrations)
    except BaseException:
        await close_host(host)
        raise
    return host


async def close_host(host: Host) -> None:
    """Flush and close store, spans and records (the reverse of opening); each step runs even if one failed."""
    steps = [("database", host.db.close), ("tracer", lambda: asyncio.to_thread(host.tracer_provider.shutdown))]
    for name, step in steps:
        try:
            await step()
        except Exception as exc:
            host.emit("bmo.close_failed", "error", resource=name, error=f"{type(exc).__name__}: {exc}")
    await asyncio.to_thread(host.records.close)


def render_text(renderable: Any, width: int = 100) -> str:
    """Plain text of a string or a Rich renderable, for HTTP and the CLI."""
    if isinstance(renderable, str):
        return renderable
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()
