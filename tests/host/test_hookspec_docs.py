"""docs/plugins.md is the hook reference: every hookspec has a heading with its exact signature."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = re.compile(r"^### `(?P<name>bmo_\w+)\((?P<args>[^)]*)\)`\s*$", re.MULTILINE)


def hookspecs() -> dict[str, str]:
    """Hook name -> argument list, read from the source (the pluggy markers, not a guess)."""
    tree = ast.parse((ROOT / "bmo" / "hookspecs.py").read_text())
    specs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list
        ):
            specs[node.name] = ", ".join(a.arg for a in node.args.args)
    return specs


def documented() -> dict[str, str]:
    text = (ROOT / "docs" / "plugins.md").read_text()
    return {m["name"]: ", ".join(a.strip() for a in m["args"].split(",") if a.strip()) for m in HEADING.finditer(text)}


def test_the_hookspec_module_is_parsed():
    specs = hookspecs()
    assert len(specs) >= 13 and specs["bmo_routes"] == "register, host"


def test_every_hookspec_is_documented_with_its_signature():
    specs, docs = hookspecs(), documented()
    missing = sorted(set(specs) - set(docs))
    assert not missing, f"docs/plugins.md has no '### `name(args)`' heading for: {missing}"
    wrong = {name: (docs[name], args) for name, args in specs.items() if docs[name] != args}
    assert not wrong, f"documented signature differs from bmo/hookspecs.py (docs, code): {wrong}"


def test_the_docs_describe_no_hook_that_does_not_exist():
    stale = sorted(set(documented()) - set(hookspecs()))
    assert not stale, f"docs/plugins.md documents hooks that bmo/hookspecs.py does not declare: {stale}"


def test_every_hookspec_has_a_docstring_and_is_registered_with_pluggy():
    from bmo import hookspecs as module
    from bmo.plugins import create_plugin_manager

    pm = create_plugin_manager("")
    for name in hookspecs():
        assert getattr(module, name).__doc__, f"{name} has no docstring"
        assert hasattr(pm.hook, name)
