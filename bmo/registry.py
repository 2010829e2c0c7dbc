"""What plugins contributed through the ``register`` hooks, collected once per host."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bmo.hook_calls import call_each, maybe_await

if TYPE_CHECKING:
    from bmo.plugins import BmoPluginManager

__all__ = ["ConfigShow", "Registry", "RouteSpec", "SidebarIndicator", "SlashCommand", "collect_config_shows",
           "collect_registry", "maybe_await"]


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
    render: Callable  # render(config, as_json) -> str; with live: render(config, as_json, live=LivePosture)
    help: str
    example: str
    plugin: str
    live: bool = False  # the command takes --url/--auth-token and renders the running server's state too


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


def _call_each(pm: BmoPluginManager, hook_name: str, make_register: Callable[[str], Callable], **kwargs) -> None:
    """Call each implementation with its own ``register``; a plugin that raises is reported, not fatal.

    Plugins are called in registration order (the host's defaults first), so the first
    registration of a name is the one kept and a later plugin's duplicate is refused.
    """

    def failed(plugin: str, exc: Exception) -> None:
        pm.fail(plugin, f"{hook_name}: {type(exc).__name__}: {exc}", hook=hook_name)

    call_each(getattr(pm.hook, hook_name), lambda plugin: {"register": make_register(plugin), **kwargs},
              reverse=True, on_error=failed)


class _Owners:
    """Which plugin registered each name of one kind first; a second registration is refused and reported."""

    def __init__(self, pm: BmoPluginManager, hook_name: str, kind: str):
        self.pm, self.hook_name, self.kind = pm, hook_name, kind
        self.by_name: dict[str, str] = {}

    def claim(self, plugin: str, *names: str) -> bool:
        """Claim every name for ``plugin``; False (and a failure naming both plugins) when one is taken."""
        for name in names:
            owner = self.by_name.get(name)
            if owner is not None:
                self.pm.fail(plugin, f"{self.hook_name}: {self.kind} {name!r} is already registered by plugin "
                             f"{owner!r}; this registration was refused (rename it, or leave one plugin out "
                             "with BMO_LOAD_PLUGINS)", hook=self.hook_name)
                return False
        self.by_name.update(dict.fromkeys(names, plugin))
        return True


def collect_config_shows(pm: BmoPluginManager) -> dict[str, ConfigShow]:
    """Every ``bmo config show-<name>`` subcommand plugins registered, by name."""
    shows: dict[str, ConfigShow] = {}
    owners = _Owners(pm, "bmo_config_show", "config-show name")

    def make(plugin: str):
        def register(name: str, render: Callable, help: str = "", example: str = "", live: bool = False) -> None:
            if owners.claim(plugin, name):
                shows[name] = ConfigShow(name, render, help, example, plugin, live)
        return register

    _call_each(pm, "bmo_config_show", make)
    return shows


def collect_registry(pm: BmoPluginManager, host) -> Registry:
    """Routes, slash commands, sidebar indicators, tools, providers and posture sections, from every plugin.

    A tool name, provider kind, posture section or slash command name/alias registered twice
    keeps the first; the second is refused and recorded in ``pm.failures``.
    """
    reg = Registry()
    pm.check_pending()  # plugins registered after loading (tests, embedders) are checked too
    slash_owners = _Owners(pm, "bmo_slash_commands", "slash command")
    tool_owners = _Owners(pm, "bmo_tools", "tool")
    provider_owners = _Owners(pm, "bmo_providers", "provider kind")
    posture_owners = _Owners(pm, "bmo_posture", "posture section")

    def routes(plugin: str):
        def register(method: str, path: str, handler: Callable, *, on_auth_failure: Callable | None = None) -> None:
            reg.routes.append(RouteSpec(method.upper(), path, handler, plugin, on_auth_failure))
        return register

    def slash(plugin: str):
        def register(name: str, run: Callable, help: str = "", aliases: tuple[str, ...] = ()) -> None:
            command = SlashCommand(name.lstrip("/"), run, help, tuple(a.lstrip("/") for a in aliases), plugin)
            if slash_owners.claim(plugin, command.name, *command.aliases):
                reg.slash_commands[command.name] = command
        return register

    def sidebar(plugin: str):
        def register(label: str, value: Callable) -> None:
            reg.sidebar.append(SidebarIndicator(label, value, plugin))
        return register

    def tools(plugin: str):
        def register(tool: Any) -> None:
            if tool_owners.claim(plugin, tool.name):
                reg.tools[tool.name] = tool
        return register

    def providers(plugin: str):
        def register(kind: str, factory: Callable) -> None:
            if provider_owners.claim(plugin, kind):
                reg.providers[kind] = factory
        return register

    def posture(plugin: str):
        def register(section: str, build: Callable) -> None:
            if posture_owners.claim(plugin, section):
                reg.posture[section] = build
        return register

    _call_each(pm, "bmo_routes", routes, host=host)
    _call_each(pm, "bmo_slash_commands", slash, host=host)
    _call_each(pm, "bmo_sidebar_indicators", sidebar, host=host)
    _call_each(pm, "bmo_tools", tools, host=host)
    _call_each(pm, "bmo_providers", providers)
    _call_each(pm, "bmo_posture", posture, host=host)
    return reg
