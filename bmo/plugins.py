"""The plugin manager: the host's defaults and every entry point in group ``bmo``."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pluggy

from bmo import hookspecs

ENTRY_POINT_GROUP = "bmo"
TRACE_ENV = "BMO_TRACE_PLUGINS"

# The host's own pieces, registered exactly like third-party plugins.
DEFAULT_PLUGINS = (
    "bmo.defaults.core_config",
    "bmo.defaults.host_routes",
    "bmo.defaults.store_upkeep",
    "bmo.defaults.tracing_status",
    "bmo.server.workers.registry",
    "bmo.agent.plugin",
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load, or one of its hooks that failed or was refused; reported, never fatal."""

    name: str
    error: str
    distribution: str = ""
    version: str = ""
    hook: str = ""  # the hook concerned, when the failure is about one


class BmoPluginManager(pluggy.PluginManager):
    """pluggy's manager for project ``bmo``, with the host's hookspecs and what loading found.

    ``failures`` lists what went wrong, in the order it happened; ``distributions`` maps an
    entry-point plugin's name to its ``(distribution, version)``.
    """

    def __init__(self, *, trace: bool = False) -> None:
        super().__init__("bmo")
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, tuple[str, str]] = {}
        if trace:
            self.trace_hook_calls()
        self.add_hookspecs(hookspecs)
        # Historic: every plugin registered from now on gets it at registration, before its other hooks run.
        self.hook.bmo_addhooks.call_historic(kwargs={"pluginmanager": self})

    def fail(self, plugin: str, error: str, *, hook: str = "") -> None:
        """Record a failure of ``plugin`` (once: the same failure reported again is dropped)."""
        distribution, version = self.distributions.get(plugin, ("", ""))
        failure = PluginFailure(plugin, error, distribution, version, hook)
        if failure not in self.failures:
            self.failures.append(failure)

    def check_pending(self) -> None:
        """pluggy's check, reported instead of raised: every implementation of a hook no spec declares
        (a misspelt name, or a hook of a plugin that is not loaded) becomes a failure naming plugin and hook."""
        known = [name for name in vars(self.hook) if not name.startswith("_") and getattr(self.hook, name).has_spec()]
        for name in sorted(vars(self.hook)):
            caller = getattr(self.hook, name)
            if name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]}?" if close else "is the plugin that declares it loaded?"
                self.fail(impl.plugin_name, f"{name}: no loaded plugin declares this hook, so it is never called; "
                          f"{hint}", hook=name)

    def trace_hook_calls(self, write: Callable[[str], object] | None = None) -> Callable[[], None]:
        """Print every hook call (hook, argument names, plugins called) and any exception; returns the undo.

        Argument values are left out: ``host`` holds the auth token and the config.
        """
        write = write or (lambda text: sys.stderr.write(text))

        def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
            plugins = ", ".join(impl.plugin_name for impl in reversed(impls)) or "(no implementation)"
            write(f"bmo trace: {hook_name}({', '.join(kwargs)}) -> {plugins}\n")

        def after(outcome: pluggy.Result, hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs) -> None:
            if outcome.exception is not None:
                write(f"bmo trace: {hook_name} raised {type(outcome.exception).__name__}: {outcome.exception}\n")

        return self.add_hookcall_monitoring(before, after)


def _wanted(names: str | None) -> set[str] | None:
    if names is None:
        return None
    return {n.strip() for n in names.split(",") if n.strip()}


def create_plugin_manager(load: str | None = None, env: Mapping[str, str] | None = None) -> BmoPluginManager:
    """Build a manager with the defaults and the allowed entry-point plugins, then check their hooks.

    ``load`` overrides ``BMO_LOAD_PLUGINS``: ``None`` loads every entry point,
    an empty string loads none, a comma list loads those (entry-point or distribution names).
    ``BMO_TRACE_PLUGINS=1`` prints every hook call to stderr. ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    pm = BmoPluginManager(trace=env.get(TRACE_ENV, "") not in ("", "0"))
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    wanted = _wanted(env.get("BMO_LOAD_PLUGINS") if load is None else load)
    found: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        found.update((ep.name, dist))
        if pm.get_plugin(ep.name) is not None:
            continue
        pm.distributions[ep.name] = (dist, version)
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the host down
            del pm.distributions[ep.name]
            if pm.get_plugin(ep.name) is not None:  # its bmo_addhooks raised half-way through registering
                pm.unregister(name=ep.name)
            pm.failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}", dist, version))
    for name in sorted((wanted or set()) - found):
        pm.failures.append(PluginFailure(
            name, f"not installed: BMO_LOAD_PLUGINS names it, but no entry point in group '{ENTRY_POINT_GROUP}' "
                  "or distribution has that name (see `bmo plugins`)"))
    pm.check_pending()
    return pm


def describe_plugins(pm: BmoPluginManager) -> list[dict]:
    """Name, version and implemented hooks of every loaded plugin, then the failures."""
    from bmo import __version__

    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        dist, version = pm.distributions.get(name, ("bmo", __version__))
        rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks})
    for failure in pm.failures:
        row = {"name": failure.name, "error": failure.error, "hooks": []}
        if failure.distribution:
            row.update(distribution=failure.distribution, version=failure.version)
        if failure.hook:
            row["hook"] = failure.hook
        rows.append(row)
    return rows
