"""The extension hooks this plugin adds are documented, with their signatures, in docs/openai-compat.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from bmo_openai_compat import hookspecs

DOC = Path(__file__).resolve().parents[3] / "docs" / "openai-compat.md"


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_hook_has_a_documented_heading_with_its_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"### `{name}({params})`" in DOC.read_text()


def test_hooks_are_added_once_to_a_plugin_manager():
    from bmo.plugins import create_plugin_manager

    pm = create_plugin_manager(load="openai_compat")
    hookspecs.ensure_hookspecs(pm)
    hookspecs.ensure_hookspecs(pm)
    for name in hookspecs.HOOK_NAMES:
        caller = getattr(pm.hook, name)
        assert caller.spec is not None and caller.spec.opts["firstresult"] is True
