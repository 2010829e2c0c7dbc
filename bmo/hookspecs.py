"""The hooks a BMO plugin can implement.

Every hook that adds things receives a ``register`` callable; a plugin calls it once
per thing it contributes. Those hooks are called plugin by plugin in registration order (the
host's defaults first); a tool, provider kind, posture section, slash command or config-show
name registered a second time is refused and reported as a failure of the second plugin.
``host`` is one of two things. Hooks called while the app is built (routes, slash commands,
sidebar, tools, posture) get the :class:`bmo.host.HostPlan`: config, plugin manager,
registry, data dir; no store yet. ``bmo_startup``, ``bmo_shutdown``, request handlers
(``get_host(request)``) and the callables those hooks register get the started
:class:`bmo.host.Host`, whose store, records and tracer are open. Hooks that run before a
server exists (config sections, CLI commands) get neither. Implementations may take any
subset of the arguments. ``docs/plugins.md`` documents each hook; a test keeps the two in
step.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("bmo")
hookimpl = pluggy.HookimplMarker("bmo")


@hookspec(historic=True)
def bmo_addhooks(pluginmanager):
    """Add the plugin's own hookspecs: ``pluginmanager.add_hookspecs(module_or_class)``.

    Historic: called as the plugin is registered, before the host calls any of its other hooks,
    so other plugins can implement the new hooks and they exist before routes are collected.
    """


@hookspec
def bmo_config_sections(register):
    """Declare config sections: ``register(path, struct_type, default)``; ``path`` is dotted, e.g. ``"options.openai_compat"``.

    ``struct_type`` is a msgspec Struct (``kw_only=True, forbid_unknown_fields=True``);
    ``default`` (optional) is an instance or factory used when the section is absent.
    Declaring the same path twice is a configuration error.
    """


@hookspec
def bmo_config_show(register):
    """Add ``bmo config show-<name>``: ``register(name, render, help=..., example=...)``; ``render(config, as_json) -> str``.

    ``example`` is shown under ``--help`` as sample output; ``render`` must never print secrets.
    ``live=True`` adds ``--url``/``--auth-token`` and calls ``render(config, as_json, live=LivePosture)``.
    """


@hookspec
def bmo_cli_commands(cli):
    """Add click commands or groups to the ``bmo`` command line: ``cli.add_command(...)``."""


@hookspec
def bmo_migrations(register):
    """Add database migrations for the plugin's own tables: ``register(owner, version, sql, postgresql=None)``.

    Each ``(owner, version)`` runs once, in version order per owner, inside the writer's
    transaction; ``sql`` may hold several statements. ``postgresql``, when given, is the text
    run instead of ``sql`` on a PostgreSQL store (where the two dialects differ); without it
    ``sql`` runs on both. Never edit a shipped migration: add one.
    """


@hookspec
def bmo_routes(register, host):
    """Add HTTP routes: ``register(method, path, handler)``; handlers are aiohttp handlers.

    ``register`` also takes ``on_auth_failure=callable(request, response)`` to observe (or
    replace) the 401 the auth boundary sends for that route. Every route but ``GET /healthz``
    needs the bearer token; ``request["requester"]`` holds the trusted-proxy identity or None.
    ``host`` is the plan; a handler reaches the started host with ``get_host(request)``.
    """


@hookspec
def bmo_slash_commands(register, host):
    """Add TUI slash commands: ``register(name, run, help=..., aliases=())``; ``run(host, args)`` returns text or a Rich renderable (may be async).

    ``host`` here is the plan; ``run`` is called with the started host.
    """


@hookspec
def bmo_sidebar_indicators(register, host):
    """Add sidebar indicators: ``register(label, value)``; ``value(host) -> str`` is shown as ``label: value``.

    ``host`` here is the plan; ``value`` is called with the started host.
    """


@hookspec
def bmo_tools(register, host):
    """Add agent tools: ``register(tool)`` with a :class:`bmo.agent.tools.base.Tool`; ``host`` is the plan."""


@hookspec
def bmo_providers(register):
    """Add model provider kinds: ``register(kind, factory)``; ``factory(name, provider_config, host)`` returns a provider.

    The factory is called at startup with the started host.
    """


@hookspec
def bmo_posture(register, host):
    """Contribute sections to the posture snapshot: ``register(section, build)``; ``build(host)`` returns a JSON-able dict (may be async).

    ``host`` here is the plan; ``build`` is called with the started host.
    """


@hookspec
def bmo_trace_record(record):
    """Called with every trace record (a dict with ``time``, ``level``, ``msg`` and fields) after it is written.

    Runs on the emitting thread, so keep it quick; do not change ``record``. An exception is
    logged as ``bmo.trace_hook_failed`` and affects neither the caller nor other plugins.
    """


@hookspec
def bmo_startup(host):
    """Called once the server's resources are open; may return an awaitable, awaited before the next plugin.

    ``host`` is the started host: records, tracer and database are open (never None);
    raising here stops the server from starting. Plugins run in pluggy's call order:
    ``tryfirst`` ones, then the newest registration first.
    """


@hookspec
def bmo_shutdown(host):
    """Called while the server stops, before the store closes; may return an awaitable.

    It runs right after the server stops accepting connections and before in-flight requests
    are awaited, so cancel long-running work here (their handlers then finish and can still
    write to ``host.db``). Plugins run in the reverse of ``bmo_startup``'s order; one that raises
    is logged as ``bmo.shutdown_failed`` and the others still run. It is also called when
    startup fails part way, so it must cope with its own ``bmo_startup`` not having run.
    """
