"""``bmo config show`` and the ``show-<name>`` subcommands plugins contribute."""

from __future__ import annotations

import json

import click

from bmo.cli.options import config_option, load_or_exit
from bmo.config.toml_text import to_toml
from bmo.registry import collect_config_shows


class ConfigShowGroup(click.Group):
    """``bmo config``: ``show`` at once, the plugins' ``show-<name>`` subcommands on first need."""

    _shows_added = False

    def _add_shows(self) -> None:
        if not self._shows_added:
            self._shows_added = True
            from bmo.cli.main import plugin_manager

            add_show_commands(plugin_manager(), self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._add_shows()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_shows()
        return super().list_commands(ctx)


@click.group("config", cls=ConfigShowGroup)
def config_group() -> None:
    """Inspect the merged configuration."""


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


def add_show_commands(pm, group: click.Group) -> None:
    """One ``show-<name>`` subcommand per ``bmo_config_show`` registration."""
    for name, entry in sorted(collect_config_shows(pm).items()):
        group.add_command(_show_command(name, entry))


def _show_command(name: str, entry) -> click.Command:
    help_text = entry.help or f"Show the resolved configuration for {name}."
    if entry.example:
        # \b keeps click from re-wrapping the example block.
        help_text += "\n\nExample output:\n\n\b\n" + entry.example

    @click.command(f"show-{name}", help=help_text)
    @config_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def command(config_files, as_json: bool, **live) -> None:
        from bmo.cli.main import plugin_manager

        config = load_or_exit(plugin_manager(), config_files)
        if not entry.live:
            click.echo(entry.render(config, as_json).rstrip("\n"))
            return
        from bmo.cli.live_posture import fetch_posture

        url = live["live_url"] or f"http://{config.section('options.http_server').addr}"
        posture = fetch_posture(url, live["live_token"], live["live_timeout_s"])
        click.echo(entry.render(config, as_json, live=posture).rstrip("\n"))

    if entry.live:
        from bmo.cli.live_posture import live_options

        command = live_options(command)
    return command
