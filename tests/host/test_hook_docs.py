"""The hook reference is a contract: every hookspec the live plugin manager knows, from the host
or from a plugin, has a heading with its exact name and arguments in its docs file."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from bmo.plugins import ENTRY_POINT_GROUP, create_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
# Module that declares hookspecs -> the docs file that documents them.
DOCS = {
    "bmo.hookspecs": ROOT / "docs" / "plugins.md",
    "bmo_openai_compat.hookspecs": ROOT / "docs" / "openai-compat.md",
}
HEADING = re.compile(r"^### `(?P<name>bmo_\w+)\((?P<args>[^)]*)\)`\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def live_specs() -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Hook name -> (declaring module, argument names, docstring), read from ``pm.hook`` with every plugin loaded."""
    every = ",".join(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    pm = create_plugin_manager(every, env={})
    assert pm.failures == []
    specs = {}
    for name, caller in vars(pm.hook).items():
        if not name.startswith("_") and caller.has_spec():
            spec = caller.spec
            specs[name] = (spec.namespace.__name__, tuple(spec.argnames), spec.function.__doc__ or "")
    return specs


def documented(path: Path) -> dict[str, tuple[str, ...]]:
    return {m["name"]: tuple(a.strip() for a in m["args"].split(",") if a.strip())
            for m in HEADING.finditer(path.read_text())}


def test_the_walk_sees_specs_declared_with_options_and_those_a_plugin_adds(live_specs):
    assert live_specs["bmo_routes"][:2] == ("bmo.hookspecs", ("register", "host"))
    assert live_specs["bmo_addhooks"][:2] == ("bmo.hookspecs", ("pluginmanager",))  # historic=True
    assert live_specs["bmo_openai_compat_classify"][:2] == ("bmo_openai_compat.hookspecs", ("request", "body"))


def test_every_hookspec_comes_from_a_module_with_a_docs_file(live_specs):
    unknown = sorted({module for module, _, _ in live_specs.values()} - set(DOCS))
    assert not unknown, f"hookspecs declared in {unknown}: add their docs file to DOCS in this test"


def test_every_hookspec_is_documented_with_its_name_and_arguments(live_specs):
    problems = []
    for name, (module, args, _) in sorted(live_specs.items()):
        docs = documented(DOCS[module])
        if name not in docs:
            problems.append(f"{DOCS[module].name} has no '### `{name}({', '.join(args)})`' heading")
        elif docs[name] != args:
            problems.append(f"{DOCS[module].name} documents {name}{docs[name]}, the spec takes {args}")
    assert not problems, "\n".join(problems)


def test_the_docs_describe_no_hook_that_does_not_exist(live_specs):
    stale = [f"{path.name}: {name}" for module, path in DOCS.items() for name in documented(path)
             if live_specs.get(name, ("",))[0] != module]
    assert not stale, f"documented hooks that no hookspec of that module declares: {stale}"


def test_every_hookspec_has_a_docstring(live_specs):
    assert not [name for name, (_, _, doc) in live_specs.items() if not doc.strip()]
