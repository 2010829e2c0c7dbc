"""Options several commands share, and loading config with errors a person can act on."""

from __future__ import annotations

import sys

import click

from bmo.config import Config, ConfigError, load_config

config_option = click.option(
    "--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
    help="Extra TOML config file(s), merged after ./bmo.toml (repeatable).",
)
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="Data directory for the database and logs (env BMO_DATA_DIR).",
)


def load_or_exit(pm, config_files=(), overrides=None) -> Config:
    try:
        return load_config(pm, config_files=tuple(config_files), overrides=overrides)
    except ConfigError as exc:
        click.echo(f"bmo: config error: {exc}", err=True)
        sys.exit(2)
