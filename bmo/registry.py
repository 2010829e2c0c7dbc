"""What plugins contributed through the ``register`` hooks, collected once per host."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Callable
    plugin: str
    # Called as on_auth_failure(request, response) when auth refuses this route; may be async.
    on_auth_failure: Callable | None = None


@dataclass(frozen=True)
class SlashCommand:
    name: str
    run: Callable
    help: str
    aliases: tuple[str, ...]
    plugin: str


@dataclass(frozen=True)
class SidebarIndicator:
    label: str
    value: Callable
    plugin: str


@dataclass(frozen=True)
class ConfigShow:
    name: str
    render: Callable  # render(config, as_json) -> str
    help: str
    example: str
    plugin: str


@dataclass
class Registry:
    """What the loaded plugins contributed to one host."""

    routes: list[RouteSpec] = field(default_factory=list)
    slash_commands: dict[str, SlashCommand] = field(default_factory=dict)
    sidebar: list[SidebarIndicator] = field(default_factory=list)
    tools: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, Callable] = field(default_factory=dict)
    posture: dict[str, Callable] = field(default_factory=dict)

    def slash(self, name: str) -> SlashCommand | None:
        """A command by its name or one of its aliases (leading ``/`` optional)."""
        name = name.lstrip("/")
        if name in self.slash_commands:
            return self.slash_commands[name]
        for cmd in self.slash_commands.values():
            if name in cmd.aliases:
                return cmd
        return None


def _caller_plugin(pm, hook_name: str):
    """Call ``hook_name`` once per plugin, handing each its own ``register`` with its name."""
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        yield impl.plugin_name, impl


def _call_each(pm, hook_name: str, make_register: Callable[[str], Callable], **kwargs) -> None:
    """Call each implementation with its own ``register``; a plugin that raises is reported, not fatal."""
    from bmo.plugins import PluginFailure

    for plugin_name, impl in _caller_plugin(pm, hook_name):
        register = make_register(plugin_name)
        args = {"register": register, **kwargs}
        accepted = {k: v for k, v in args.items() if k in impl.argnames}
        try:
            impl.function(**accepted)
        except Exception as exc:  # one plugin's bug must not take the host down
            failures = getattr(pm, "bmo_failures", None)
            if failures is None:
                raise
            failures.append(PluginFailure(plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}"))


def collect_config_shows(pm) -> dict[str, ConfigShow]:
    """Every ``bmo config show-<name>`` subcommand plugins registered, by name."""
    shows: dict[str, ConfigShow] = {}

    def make(plugin: str):
        def register(name: str, render: Callable, help: str = "", example: str = "") -> None:
            shows[name] = ConfigShow(name, render, help, example, plugin)
        return register

    _call_each(pm, "bmo_config_show", make)
    return shows


def collect_registry(pm, host) -> Registry:
    """Routes, slash commands, sidebar indicators, tools, providers and posture sections, from every plugin."""
    reg = Registry()

    def routes(plugin: str):
        def register(method: str, path: str, handler: Callable, *, on_auth_failure: Callable | None = None) -> None:
            reg.routes.append(RouteSpec(method.upper(), path, handler, plugin, on_auth_failure))
        return register

    def slash(plugin: str):
        def register(name: str, run: Callable, help: str = "", aliases: tuple[str, ...] = ()) -> None:
            reg.slash_commands[name.lstrip("/")] = SlashCommand(
                name.lstrip("/"), run, help, tuple(a.lstrip("/") for a in aliases), plugin
            )
        return register

    def sidebar(plugin: str):
        def register(label: str, value: Callable) -> None:
            reg.sidebar.append(SidebarIndicator(label, value, plugin))
        return register

    def tools(plugin: str):
        def register(tool: Any) -> None:
            reg.tools[tool.name] = tool
        return register

    def providers(plugin: str):
        def register(kind: str, factory: Callable) -> None:
            reg.providers[kind] = factory
        return register

    def posture(plugin: str):
        def register(section: str, build: Callable) -> None:
            reg.posture[section] = build
        return register

    _call_each(pm, "bmo_routes", routes, host=host)
    _call_each(pm, "bmo_slash_commands", slash, host=host)
    _call_each(pm, "bmo_sidebar_indicators", sidebar, host=host)
    _call_each(pm, "bmo_tools", tools, host=host)
    _call_each(pm, "bmo_providers", providers)
    _call_each(pm, "bmo_posture", posture, host=host)
    return reg


async def maybe_await(value: Any) -> Any:
    """``await value`` when it is awaitable, else ``value`` (hooks may be sync or async)."""
    if inspect.isawaitable(value):
        return await value
    return value
