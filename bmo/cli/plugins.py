"""``bmo plugins``: what is loaded, its version and its hooks."""

from __future__ import annotations

import json

import click

from bmo.cli.main import plugin_manager
from bmo.plugins import describe_plugins


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List loaded plugins, their versions and the hooks they implement."""
    rows = describe_plugins(plugin_manager())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']}  FAILED: {row['error']}")
            continue
        click.echo(f"{row['name']}  {row['distribution']} {row['version']}")
        click.echo(f"  hooks: {', '.join(row['hooks']) or '-'}")
