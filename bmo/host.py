"""The running host: what every plugin reaches through ``host``."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmo.config import Config
from bmo.registry import Registry, maybe_await
from bmo.server.auth import TrustedProxies, is_loopback_host, split_addr
from bmo.store import DB_FILENAME, Database
from bmo.tracing.records import RecordLog


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
class Host:
    """Config, store, records, tracer and what plugins registered, for one server."""

    config: Config
    pm: Any
    data_dir: Path
    serve: ServeSettings
    registry: Registry = field(default_factory=Registry)
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    db: Database | None = None
    records: RecordLog | None = None
    tracer: Any = None
    tracer_provider: Any = None
    # Per-plugin runtime state, keyed by plugin name.
    state: dict[str, Any] = field(default_factory=dict)
    # The environment the host reads OTEL_* and BMO_* from; None means os.environ.
    env: dict[str, str] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def emit(self, msg: str, level: str = "info", **fields: Any) -> dict:
        """Write a trace record (JSON line + ``bmo_trace_record`` hook); levels: debug, info, warn, error.

        Before the server started (no record log yet) the record is returned but not written.
        """
        if self.records is None:
            return {"msg": msg, "level": level, **fields}
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


def render_text(renderable: Any, width: int = 100) -> str:
    """Plain text of a string or a Rich renderable, for HTTP and the CLI."""
    if isinstance(renderable, str):
        return renderable
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()
