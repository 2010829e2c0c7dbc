"""``bmo --version`` and ``bmo --help`` import no plugin; plugin commands still load when named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bmo.testing.harness import clean_env

PLUGIN_PACKAGES = ("bmo_openai_compat", "bmo_mcp", "bmo_open_webui", "bmo_hello")
# Run the CLI like `python -m bmo ARGS`, then print which modules that imported.
PROBE = """
import json, runpy, sys
sys.argv = ["bmo", *sys.argv[1:]]
try:
    runpy.run_module("bmo", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported_by(tmp_path, *args: str) -> tuple[str, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
                          env=clean_env(tmp_path), cwd=tmp_path, stdin=subprocess.DEVNULL)
    modules = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    return proc.stdout, modules


def _plugins_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in PLUGIN_PACKAGES or m == "bmo.agent.plugin")


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_plugin(tmp_path, flag):
    stdout, modules = _imported_by(tmp_path, flag)
    assert stdout.strip(), "the command printed nothing"
    assert _plugins_in(modules) == []


def test_help_lists_the_built_in_commands_and_names_the_installed_plugins(run_bmo):
    text = run_bmo("--help").stdout
    for command in ("config", "logs", "plugins", "serve", "tui"):
        assert f"\n  {command} " in text
    assert "Installed: " in text and "mcp" in text.split("Installed: ", 1)[1]


def test_a_plugin_command_loads_when_named(tmp_path, run_bmo):
    stdout, modules = _imported_by(tmp_path, "mcp", "--help")
    assert "serve" in stdout and "bmo_mcp" in modules
    assert run_bmo("mcp", "--help").returncode == 0


def test_config_lists_the_plugins_show_subcommands(run_bmo):
    text = run_bmo("config", "--help").stdout
    assert "show-openai-compat" in text and "show-mcp" in text and "show-hello" in text
