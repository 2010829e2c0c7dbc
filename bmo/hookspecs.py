"""The hooks a BMO plugin can implement.

Every hook that adds things receives a ``register`` callable; a plugin calls it once
per thing it contributes. ``host`` is the running :class:`bmo.host.Host` (config,
store, records, coordinator); hooks that run before a server exists (config sections,
CLI commands) do not get it. Implementations may take any subset of the arguments.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("bmo")
hookimpl = pluggy.HookimplMarker("bmo")


@hookspec
def bmo_config_sections(register):
    """Declare config sections: ``register(path, struct_type, default)``; ``path`` is dotted, e.g. ``"options.openai_compat"``."""


@hookspec
def bmo_config_show(register):
    """Add ``bmo config show-<name>``: ``register(name, render, help=..., example=...)``; ``render(config, as_json) -> str``."""


@hookspec
def bmo_cli_commands(cli):
    """Add click commands or groups to the ``bmo`` command line."""


@hookspec
def bmo_migrations(register):
    """Add database migrations for the plugin's own tables: ``register(owner, version, sql)``."""


@hookspec
def bmo_routes(register, host):
    """Add HTTP routes: ``register(method, path, handler)``; handlers are aiohttp handlers."""


@hookspec
def bmo_slash_commands(register, host):
    """Add TUI slash commands: ``register(name, run, help=..., aliases=())``; ``run(host, args)`` returns text or a Rich renderable (may be async)."""


@hookspec
def bmo_sidebar_indicators(register, host):
    """Add sidebar indicators: ``register(label, value)``; ``value(host) -> str`` is shown as ``label: value``."""


@hookspec
def bmo_tools(register, host):
    """Add agent tools: ``register(tool)`` with a :class:`bmo.agent.tools.base.Tool`."""


@hookspec
def bmo_providers(register):
    """Add model provider kinds: ``register(kind, factory)``; ``factory(name, provider_config, host)`` returns a provider."""


@hookspec
def bmo_posture(register, host):
    """Contribute sections to the posture snapshot: ``register(section, build)``; ``build(host)`` returns a JSON-able dict (may be async)."""


@hookspec
def bmo_trace_record(record):
    """Called with every trace record (a dict with ``time``, ``level``, ``msg`` and fields) after it is written."""


@hookspec
def bmo_startup(host):
    """Called once the server's resources are open; may return an awaitable."""


@hookspec
def bmo_shutdown(host):
    """Called while the server stops, before the store closes; may return an awaitable."""
