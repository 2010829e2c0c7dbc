"""The agent core's registration with the host: config, tables, tools, providers, routes, lifecycle."""

from __future__ import annotations

import json
import sys

import msgspec

from bmo.agent import COORDINATOR_STATE_KEY, maybe_coordinator
from bmo.agent.config import SECTIONS, ProviderOptions
from bmo.guidance import speaks_at_startup, unreachable_paragraph
from bmo.hookspecs import hookimpl


@hookimpl
def bmo_config_sections(register):
    for path, struct in SECTIONS.items():
        register(path, struct)
    register("providers", dict[str, ProviderOptions], dict)


def _renderer(path: str, view=msgspec.to_builtins):
    def render(config, as_json: bool) -> str:
        value = view(config.section(path))
        if as_json:
            return json.dumps({path: value}, indent=2)
        from bmo.config.toml_text import to_toml

        return to_toml(value, path)

    return render


_SHOWS = {
    "file-tools": ("agent.file_tools", "Show [agent.file_tools]: limits of the file tools.",
                   '[agent.file_tools]\nmax_read_bytes = 262144\nmax_write_bytes = 1048576\nmax_list_entries = 500\n...'),
    "web-fetch": ("agent.web_fetch", "Show [agent.web_fetch]: the hosts and networks web_fetch may reach, redirects.",
                  "[agent.web_fetch]\nallow_hosts = []\nallow_cidrs = []\nmax_redirects = 5"),
    "loop-detection": ("agent.loop_detection", "Show [agent.loop_detection]: when repeated identical tool calls stop a run.",
                       "[agent.loop_detection]\nenabled = true\nmax_identical_calls = 3"),
    "length-recovery": ("agent.length_recovery", "Show [agent.length_recovery]: continuing answers cut off by length.",
                        '[agent.length_recovery]\nenabled = true\nmax_continuations = 3\ncontinue_prompt = "..."'),
    "context": ("agent.context", "Show [agent.context]: context windows and how long chats are compacted.",
                "[agent.context]\nenabled = true\ncontext_window = 32768\nmodels = {}\nreserve_tokens = 4096\n..."),
    "spawning": ("agent.spawning", "Show [agent.spawning]: limits of spawn_agent sub-runs.",
                 "[agent.spawning]\nenabled = true\nmax_depth = 2\nmax_per_run = 4\nmax_steps = 12"),
}
_SANDBOX_SHOW = ("Show [agent.sandbox]: how tool commands are confined (bubblewrap), and their limits.",
                 '[agent.sandbox]\nmode = "bwrap"\nnetwork = "off"\nread_only_binds = []\n...\ncpu_time_s = 600\n...')


@hookimpl
def bmo_config_show(register):
    for name, (path, help_text, example) in _SHOWS.items():
        register(name, _renderer(path), help=help_text, example=example)
    from bmo.agent.sandbox.status import shown_options

    register("sandbox", _renderer("agent.sandbox", shown_options), help=_SANDBOX_SHOW[0], example=_SANDBOX_SHOW[1])


@hookimpl
def bmo_migrations(register):
    from bmo.agent import migrations_postgresql
    from bmo.agent.store import MIGRATION_OWNER, MIGRATIONS

    for version, sql in MIGRATIONS:
        register(MIGRATION_OWNER, version, sql, postgresql=migrations_postgresql.MIGRATIONS.get(version))


@hookimpl
def bmo_tools(register, host):
    from bmo.agent.sandbox import Sandbox
    from bmo.agent.tools import core_tools
    from bmo.agent.tools.base import EXEC

    # Without a usable sandbox the model is not even offered the tools that start processes.
    can_exec = host is None or Sandbox.for_host(host).can_run
    for tool in core_tools():
        if tool.tool_class != EXEC or can_exec:
            register(tool)


@hookimpl
def bmo_posture(register, host):
    from bmo.agent.sandbox.status import posture_for

    register("sandbox", posture_for)
    register("readiness", readiness_for)
    register("local_models", local_models_for)


def readiness_for(host):
    """The posture's ``readiness`` section: can a chat be answered now, and if not, why."""
    from bmo.guidance import readiness

    return readiness(host.config, maybe_coordinator(host))


def local_models_for(host):
    """The posture's ``local_models`` section: each embedded model's state, load time and memory."""
    from bmo.agent.providers.llamacpp.provider import posture_for

    return posture_for(host)


@hookimpl(specname="bmo_startup")
async def sandbox_startup(host):
    """Say once, at start, when tool commands run unsandboxed or cannot run at all."""
    from bmo.agent.sandbox.status import announce

    await announce(host)


@hookimpl
def bmo_providers(register):
    from bmo.agent.providers import openai
    from bmo.agent.providers.llamacpp import provider as llamacpp

    register("openai", openai.create)
    register(llamacpp.KIND, llamacpp.create)


@hookimpl
def bmo_routes(register):
    from bmo.agent.api.routes import register_routes

    register_routes(register)


@hookimpl
async def bmo_startup(host):
    from bmo.agent.coordinator import Coordinator
    from bmo.agent.recovery import recover

    await recover(host)  # before serving: close what a crashed process left unfinished

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
    paragraph = unreachable_paragraph(coordinator)
    if paragraph and speaks_at_startup(host.env):  # once, before the ready line, as bmo serve's own advice
        print(paragraph, file=sys.stderr, flush=True)
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
