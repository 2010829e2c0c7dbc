"""The plugin manager from inside: added hookspecs, unknown hooks, call order, refused duplicates, tracing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pluggy
import pytest

from bmo.config import load_config
from bmo.hook_calls import implementations, in_reverse_of
from bmo.hookspecs import hookimpl
from bmo.host import ServeSettings
from bmo.plugins import BmoPluginManager, PluginFailure, create_plugin_manager
from bmo.registry import collect_config_shows
from bmo.server.app import build_host
from bmo.testing.harness import start_server

hookspec = pluggy.HookspecMarker("bmo")


@contextmanager
def registered(pm: BmoPluginManager, **plugins: object) -> Iterator[BmoPluginManager]:
    """Register throwaway plugins by name, in keyword order, and always unregister them."""
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    try:
        yield pm
    finally:
        for name in plugins:
            pm.unregister(name=name)


def host_for(pm: BmoPluginManager, token: str = "t"):
    config = load_config(pm, env={}, cwd="/nonexistent")
    return build_host(config, pm, ServeSettings(addr="127.0.0.1:0", auth_token=token), env={})


# --- bmo_addhooks -----------------------------------------------------------------------------

class ExtraSpecs:
    @hookspec(firstresult=True)
    def bmo_test_extra(self, value):
        """A hook a throwaway plugin adds."""


class Extender:
    @hookimpl
    def bmo_addhooks(self, pluginmanager):
        pluginmanager.add_hookspecs(ExtraSpecs)


class Implementer:
    @hookimpl
    def bmo_test_extra(self, value):
        return value * 2


def test_bmo_addhooks_adds_hookspecs_as_the_plugin_is_registered():
    pm = create_plugin_manager("")
    with registered(pm, **{"test-implementer": Implementer(), "test-extender": Extender()}):
        # The implementation registered before the spec existed is verified once the spec is added.
        assert pm.hook.bmo_test_extra.spec is not None
        assert pm.hook.bmo_test_extra.spec.opts["firstresult"] is True
        pm.check_pending()
        assert pm.failures == []
        assert pm.hook.bmo_test_extra(value=21) == 42


def test_the_openai_compat_hooks_exist_as_soon_as_the_plugin_is_loaded():
    pm = create_plugin_manager("openai_compat")
    for name in ("bmo_openai_compat_session_key", "bmo_openai_compat_classify", "bmo_openai_compat_requester"):
        caller = getattr(pm.hook, name)
        assert caller.spec is not None and caller.spec.opts["firstresult"] is True, name
    assert pm.failures == []


# --- unknown hooks (check_pending) ------------------------------------------------------------

class Misspelt:
    @hookimpl
    def bmo_rouets(self, register):
        register("GET", "/v1/misspelt", None)

    @hookimpl(optionalhook=True)
    def bmo_some_absent_plugins_hook(self):
        """Meant for a plugin that may not be loaded: not an error."""

    @hookimpl
    def bmo_sidebar_indicators(self, register):
        register("Misspelt", lambda host: "loaded")


def test_a_misspelt_hook_is_one_failure_naming_plugin_and_hook():
    pm = create_plugin_manager("")
    with registered(pm, **{"test-misspelt": Misspelt()}):
        pm.check_pending()
        pm.check_pending()  # checking again reports nothing twice
        error = "bmo_rouets: no loaded plugin declares this hook, so it is never called; did you mean bmo_routes?"
        assert pm.failures == [PluginFailure("test-misspelt", error, hook="bmo_rouets")]


async def test_the_server_starts_with_a_misspelt_hook_and_lists_it(tmp_path):
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=[Misspelt()])
    try:
        import aiohttp

        async with aiohttp.ClientSession() as client:
            async with client.get(srv.api + "/bmo/plugins", headers=srv.headers()) as resp:
                rows = (await resp.json())["data"]
            async with client.get(srv.api + "/bmo/sidebar", headers=srv.headers()) as resp:
                sidebar = (await resp.json())["data"]
    finally:
        await srv.stop()
    failed = [row for row in rows if "error" in row]
    assert [(row["name"], row["hook"]) for row in failed] == [("test-plugin-0-Misspelt", "bmo_rouets")]
    assert {"label": "Misspelt", "value": "loaded"} in sidebar  # the plugin's real hooks still work


# --- the order of startup and shutdown --------------------------------------------------------

class Recorder:
    def __init__(self, name: str, log: list[str]):
        self.name, self.log = name, log

    @hookimpl
    async def bmo_startup(self, host):
        await asyncio.sleep(0)  # awaited before the next plugin starts
        self.log.append(f"start {self.name}")

    @hookimpl
    def bmo_shutdown(self):
        self.log.append(f"stop {self.name}")


class EarlyRecorder(Recorder):
    @hookimpl(tryfirst=True)
    def bmo_startup(self, host):
        self.log.append(f"start {self.name}")


async def test_startup_runs_in_call_order_and_shutdown_in_its_exact_reverse(tmp_path):
    log: list[str] = []
    plugins = [EarlyRecorder("early", log), Recorder("first", log), Recorder("second", log), Recorder("third", log)]
    srv = await start_server(tmp_path / "data", token="t", load_plugins="", plugins=plugins)
    await srv.stop()
    started = ["start early", "start third", "start second", "start first"]
    assert log == started + ["stop first", "stop second", "stop third", "stop early"]


def test_the_agent_core_stops_before_the_compat_ledger_and_mcp():
    pm = create_plugin_manager("openai_compat,mcp")
    stopping = [impl.plugin_name for impl in in_reverse_of(pm, pm.hook.bmo_shutdown, pm.hook.bmo_startup)]
    starting = [impl.plugin_name for impl in implementations(pm.hook.bmo_startup)]
    assert stopping.index("bmo.agent.plugin") < stopping.index("openai_compat") < stopping.index("mcp")
    assert starting[0] == "mcp"  # tryfirst: its tools are in the registry before the agent starts


# --- a name registered twice ------------------------------------------------------------------

def _plugin(hook: str, register_call) -> object:
    """A throwaway plugin whose ``hook`` calls ``register_call(register)``."""
    def implementation(register):
        register_call(register)
    return type("Throwaway", (), {hook: staticmethod(hookimpl(implementation))})()


def _refusal(kind: str, name: str, owner: str) -> str:
    return (f"{kind} {name!r} is already registered by plugin {owner!r}; this registration was refused "
            "(rename it, or leave one plugin out with BMO_LOAD_PLUGINS)")


def _slash(name: str, aliases=()):
    return lambda register: register(name, lambda host, args: name, aliases=aliases)


DUPLICATES = {
    # case: (hook, first plugin's call or None for a host default, second plugin's call, kind, name, owner)
    "tool": ("bmo_tools", None, lambda r: r(SimpleNamespace(name="read_file")), "tool", "read_file",
             "bmo.agent.plugin"),
    "provider kind": ("bmo_providers", None, lambda r: r("openai", lambda *a: None), "provider kind", "openai",
                      "bmo.agent.plugin"),
    "posture section": ("bmo_posture", lambda r: r("demo", lambda host: {"n": 1}),
                        lambda r: r("demo", lambda host: {"n": 2}), "posture section", "demo", "test-first"),
    "slash command name": ("bmo_slash_commands", _slash("demo"), _slash("demo"), "slash command", "demo",
                           "test-first"),
    "slash alias taken by a name": ("bmo_slash_commands", _slash("demo"), _slash("other", aliases=("/demo",)),
                                    "slash command", "demo", "test-first"),
    "slash name taken by an alias": ("bmo_slash_commands", _slash("demo", aliases=("d",)), _slash("d"),
                                     "slash command", "d", "test-first"),
}


@pytest.mark.parametrize("case", DUPLICATES)
def test_a_second_registration_of_a_name_is_refused_naming_both_plugins(case):
    hook, first, second, kind, name, owner = DUPLICATES[case]
    pm = create_plugin_manager("")
    plugins = {"test-second": _plugin(hook, second)}
    if first is not None:
        plugins = {"test-first": _plugin(hook, first), **plugins}
    with registered(pm, **plugins):
        registry = host_for(pm).registry
    assert pm.failures == [PluginFailure("test-second", f"{hook}: {_refusal(kind, name, owner)}", hook=hook)]
    kept = {"bmo_tools": lambda: registry.tools["read_file"].__module__,
            "bmo_providers": lambda: registry.providers["openai"].__module__,
            "bmo_posture": lambda: registry.posture["demo"](None),
            "bmo_slash_commands": lambda: registry.slash(name).run(None, "")}[hook]()
    assert kept == {"bmo_tools": "bmo.agent.tools.files", "bmo_providers": "bmo.agent.providers.openai",
                    "bmo_posture": {"n": 1}, "bmo_slash_commands": "demo"}[hook]
    if hook == "bmo_slash_commands":
        assert "other" not in registry.slash_commands  # refused whole, not half-registered


def test_a_second_config_show_of_a_name_is_refused_naming_both_plugins():
    pm = create_plugin_manager("")
    second = _plugin("bmo_config_show", lambda r: r("file-tools", lambda config, as_json: "mine"))
    with registered(pm, **{"test-second": second}):
        shows = collect_config_shows(pm)
    assert shows["file-tools"].plugin == "bmo.agent.plugin"
    assert pm.failures == [PluginFailure(
        "test-second", f"bmo_config_show: {_refusal('config-show name', 'file-tools', 'bmo.agent.plugin')}",
        hook="bmo_config_show")]


# --- BMO_TRACE_PLUGINS ------------------------------------------------------------------------

class Raises:
    @hookimpl
    def bmo_routes(self, register, host):
        raise RuntimeError("boom in routes")


def test_bmo_trace_plugins_prints_each_call_by_argument_names_never_values(capsys):
    pm = create_plugin_manager("", env={"BMO_TRACE_PLUGINS": "1"})
    with registered(pm, **{"test-raises": Raises()}):
        host_for(pm, token="s3cret-token-value")
    err = capsys.readouterr().err.splitlines()
    assert "bmo trace: bmo_routes(register, host) -> bmo.defaults.host_routes" in err
    assert "bmo trace: bmo_routes(register, host) -> test-raises" in err
    assert "bmo trace: bmo_routes raised RuntimeError: boom in routes" in err
    assert "bmo trace: bmo_config_sections(register) -> bmo.agent.plugin, bmo.defaults.core_config" in err
    assert not [line for line in err if "s3cret" in line]


def test_without_bmo_trace_plugins_nothing_is_printed(capsys):
    pm = create_plugin_manager("", env={})
    host_for(pm)
    assert "bmo trace:" not in capsys.readouterr().err
