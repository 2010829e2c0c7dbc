"""``bmo config show`` and the ``show-<name>`` subcommands plugins contribute."""

from __future__ import annotations

import json

import click

from bmo.cli.options import config_option, load_or_exit
from bmo.registry import collect_config_shows


@click.group("config")
def config_group() -> None:
    """Inspect the merged configuration."""


def to_toml(tree: dict, prefix: str = "") -> str:
    """A small TOML writer for config trees (tables, scalars, lists of scalars)."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = ""
    if prefix and (lines or not tables):
        out += f"[{prefix}]\n"
    if lines:
        out += "\n".join(lines) + "\n\n"
    for key, value in tables:
        out += to_toml(value, f"{prefix}.{key}" if prefix else key)
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
