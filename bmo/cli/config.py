"""``bmo config show`` and the ``show-<name>`` subcommands plugins contribute."""

from __future__ import annotations

import json
import math
import re

import click

from bmo.cli.options import config_option, load_or_exit
from bmo.registry import collect_config_shows


@click.group("config")
def config_group() -> None:
    """Inspect the merged configuration."""


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value) -> str:
    """A TOML value: JSON's string escapes are valid TOML; tables inside lists become inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(value)


def to_toml(tree: dict, prefix: str = "") -> str:
    """TOML text for a config tree; ``tomllib`` reads it back to the same tree (None values are omitted)."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {_key(key)} is not set")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = ""
    if prefix and (lines or not tables):
        out += f"[{prefix}]\n"
    if lines:
        out += "\n".join(lines) + "\n\n"
    for key, value in tables:
        out += to_toml(value, f"{prefix}.{_key(key)}" if prefix else _key(key))
    return out


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def show(config_files, as_json: bool) -> None:
    """Print the merged configuration with secrets redacted (set/unset)."""
    from bmo.cli.main import plugin_manager

    config = load_or_exit(plugin_manager(), config_files)
    tree = config.to_dict(redact=True)
    if as_json:
        click.echo(json.dumps({"sources": config.sources, "config": tree}, indent=2))
    else:
        click.echo(f"# sources, later wins: {', '.join(config.sources)}")
        click.echo(to_toml(tree).rstrip())


def add_show_commands(pm) -> None:
    """One ``show-<name>`` subcommand per ``bmo_config_show`` registration."""
    for name, entry in sorted(collect_config_shows(pm).items()):
        config_group.add_command(_show_command(name, entry))


def _show_command(name: str, entry) -> click.Command:
    help_text = entry.help or f"Show the resolved configuration for {name}."
    if entry.example:
        # \b keeps click from re-wrapping the example block.
        help_text += "\n\nExample output:\n\n\b\n" + entry.example

    @click.command(f"show-{name}", help=help_text)
    @config_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def command(config_files, as_json: bool) -> None:
        from bmo.cli.main import plugin_manager

        config = load_or_exit(plugin_manager(), config_files)
        click.echo(entry.render(config, as_json).rstrip("\n"))

    return command
