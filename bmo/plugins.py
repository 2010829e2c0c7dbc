"""The plugin manager: the host's defaults and every entry point in group ``bmo``."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass

import pluggy

from bmo import hookspecs

ENTRY_POINT_GROUP = "bmo"

# The host's own pieces, registered exactly like third-party plugins.
DEFAULT_PLUGINS = (
    "bmo.defaults.core_config",
    "bmo.defaults.host_routes",
    "bmo.agent.plugin",
)


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not be loaded; reported, never fatal."""

    name: str
    error: str
    distribution: str = ""
    version: str = ""


def _wanted(names: str | None) -> set[str] | None:
    if names is None:
        return None
    return {n.strip() for n in names.split(",") if n.strip()}


def create_plugin_manager(load: str | None = None) -> pluggy.PluginManager:
    """Build a manager with the defaults and the allowed entry-point plugins.

    ``load`` overrides ``BMO_LOAD_PLUGINS``: ``None`` loads every entry point,
    an empty string loads none, a comma list loads those (entry-point or distribution names).
    """
    pm = pluggy.PluginManager("bmo")
    pm.add_hookspecs(hookspecs)
    pm.bmo_failures = []  # type: ignore[attr-defined]
    pm.bmo_dists = {}  # type: ignore[attr-defined]  # plugin name -> (distribution, version)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    wanted = _wanted(os.environ.get("BMO_LOAD_PLUGINS") if load is None else load)
    found: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else ""
        version = ep.dist.version if ep.dist else ""
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        found.update((ep.name, dist))
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the host down
            pm.bmo_failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}", dist, version))
            continue
        pm.bmo_dists[ep.name] = (dist, version)
    for name in sorted((wanted or set()) - found):
        pm.bmo_failures.append(PluginFailure(
            name, f"not installed: BMO_LOAD_PLUGINS names it, but no entry point in group '{ENTRY_POINT_GROUP}' "
                  "or distribution has that name (see `bmo plugins`)"))
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[dict]:
    """Name, version and implemented hooks of every loaded plugin, then the failures."""
    from bmo import __version__

    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        dist, version = pm.bmo_dists.get(name, ("bmo", __version__))
        rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks})
    for failure in pm.bmo_failures:
        row = {"name": failure.name, "error": failure.error, "hooks": []}
        if failure.distribution:
            row.update(distribution=failure.distribution, version=failure.version)
        rows.append(row)
    return rows
