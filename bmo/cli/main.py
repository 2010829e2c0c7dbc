"""The ``bmo`` command group; each command lives in its own module."""

from __future__ import annotations

import functools

import click

from bmo import __version__


@functools.cache
def plugin_manager():
    """One plugin manager per CLI process, honouring BMO_LOAD_PLUGINS."""
    from bmo.plugins import create_plugin_manager

    return create_plugin_manager()


@click.group()
@click.version_option(__version__, prog_name="bmo")
def cli() -> None:
    """BMO: an agent host with an OpenAI-compatible HTTP surface."""


def _install() -> None:
    from bmo.cli import config, logs, plugins, serve, tui

    cli.add_command(serve.serve)
    cli.add_command(config.config_group)
    cli.add_command(plugins.plugins)
    cli.add_command(logs.logs)
    cli.add_command(tui.tui)
    config.add_show_commands(plugin_manager())
    plugin_manager().hook.bmo_cli_commands(cli=cli)


_install()
