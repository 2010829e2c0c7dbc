"""The agent core's registration with the host: config, tables, tools, providers, routes, lifecycle."""

from __future__ import annotations

import json

import msgspec

from bmo.agent import COORDINATOR_STATE_KEY, maybe_coordinator
from bmo.agent.config import SECTIONS, ProviderOptions
from bmo.hookspecs import hookimpl


@hookimpl
def bmo_config_sections(register):
    for path, struct in SECTIONS.items():
        register(path, struct)
    register("providers", dict[str, ProviderOptions], dict)


def _renderer(path: str):
    def render(config, as_json: bool) -> str:
        value = msgspec.to_builtins(config.section(path))
        if as_json:
            return json.dumps({path: value}, indent=2)
        from bmo.config.toml_text import to_toml

        return to_toml(value, path)

    return render


_SHOWS = {
    "file-tools": ("agent.file_tools", "Show [agent.file_tools]: limits of the file tools.",
                   '[agent.file_tools]\nmax_read_bytes = 262144\nmax_write_bytes = 1048576\nmax_list_entries = 500\n...'),
    "loop-detection": ("agent.loop_detection", "Show [agent.loop_detection]: when repeated identical tool calls stop a run.",
                       "[agent.loop_detection]\nenabled = true\nmax_identical_calls = 3"),
    "length-recovery": ("agent.length_recovery", "Show [agent.length_recovery]: continuing answers cut off by length.",
                        '[agent.length_recovery]\nenabled = true\nmax_continuations = 3\ncontinue_prompt = "..."'),
    "spawning": ("agent.spawning", "Show [agent.spawning]: limits of spawn_agent sub-runs.",
                 "[agent.spawning]\nenabled = true\nmax_depth = 2\nmax_per_run = 4\nmax_steps = 12"),
}


@hookimpl
def bmo_config_show(register):
    for name, (path, help_text, example) in _SHOWS.items():
        register(name, _renderer(path), help=help_text, example=example)


@hookimpl
def bmo_migrations(register):
    from bmo.agent.store import MIGRATION_OWNER, MIGRATIONS

    for version, sql in MIGRATIONS:
        register(MIGRATION_OWNER, version, sql)


@hookimpl
def bmo_tools(register):
    from bmo.agent.tools import core_tools

    for tool in core_tools():
        register(tool)


@hookimpl
def bmo_providers(register):
    from bmo.agent.providers import openai

    register("openai", openai.create)


@hookimpl
def bmo_routes(register):
    from bmo.agent.api.routes import register_routes

    register_routes(register)


@hookimpl
async def bmo_startup(host):
    from bmo.agent.coordinator import Coordinator

    providers = {}
    for name, options in host.config.section("providers").items():
        factory = host.registry.providers.get(options.kind)
        if factory is None:
            known = ", ".join(sorted(host.registry.providers)) or "none"
            host.emit("agent.provider.invalid", "error", provider=name,
                      error=f"[providers.{name}] kind = {options.kind!r} is unknown; known kinds: {known}")
            continue
        try:
            providers[name] = factory(name, options, host)
        except (ValueError, msgspec.ValidationError) as exc:
            host.emit("agent.provider.invalid", "error", provider=name, error=str(exc))
    coordinator = Coordinator(host, providers)
    await coordinator.discover_models()
    host.state[COORDINATOR_STATE_KEY] = coordinator
    if not providers:
        host.emit("agent.no_provider", "warn", hint="add a [providers.NAME] table to bmo.toml to serve models")


@hookimpl
async def bmo_shutdown(host):
    coordinator = maybe_coordinator(host)
    if coordinator is None:
        return
    try:
        await coordinator.shutdown()
    finally:
        await coordinator.close_providers()
