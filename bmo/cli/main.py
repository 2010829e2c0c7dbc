"""The ``bmo`` command group; each command lives in its own module, plugins' commands load on first need."""

from __future__ import annotations

import functools
import importlib.metadata

import click

from bmo import __version__


@functools.cache
def plugin_manager():
    """One plugin manager per CLI process, honouring BMO_LOAD_PLUGINS."""
    from bmo.plugins import create_plugin_manager

    return create_plugin_manager()


class PluginCommandGroup(click.Group):
    """The ``bmo`` group: built-in commands at once, ``bmo_cli_commands`` ones when a name is not built in.

    ``bmo --version`` and ``bmo --help`` so import no plugin; the help names the installed
    plugins from their entry points instead of listing their commands.
    """

    _plugins_added = False

    def add_plugin_commands(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            plugin_manager().hook.bmo_cli_commands(cli=self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self.add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Only what is registered already: listing plugin commands would import every plugin.
        commands = [(name, cmd) for name, cmd in sorted(self.commands.items()) if not cmd.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)  # as click.Group does
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])
        names = _installed_plugin_names()
        if names and not self._plugins_added:
            with formatter.section("Plugins"):
                formatter.write_text(
                    f"Installed: {', '.join(names)}. Their commands load when named (`bmo COMMAND --help`); "
                    "`bmo plugins` lists what each contributes.")


def _installed_plugin_names() -> list[str]:
    """Entry-point names in group ``bmo``: read from package metadata, nothing imported."""
    from bmo.plugins import ENTRY_POINT_GROUP

    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


@click.group(cls=PluginCommandGroup)
@click.version_option(__version__, prog_name="bmo")
def cli() -> None:
    """BMO: an agent host with an OpenAI-compatible HTTP surface."""


def _install() -> None:
    from bmo.cli import config, init, logs, plugins, serve, store, tui

    cli.add_command(serve.serve)
    cli.add_command(init.init)
    cli.add_command(config.config_group)
    cli.add_command(plugins.plugins)
    cli.add_command(logs.logs)
    cli.add_command(tui.tui)
    cli.add_command(store.store_group)


_install()
