"""``bmo plugins``: what is loaded, its version and its hooks, and what every serving worker loaded."""

from __future__ import annotations

import json

import click

from bmo.cli.main import plugin_manager
from bmo.cli.options import config_option, data_dir_option
from bmo.plugins import describe_plugins


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
@data_dir_option
def plugins(as_json: bool, config_files, data_dir) -> None:
    """List loaded plugins, their versions and the hooks they implement.

    When servers share the data dir's store (``bmo serve --workers N``), each worker's own
    plugin list is compared with this one.
    """
    pm = plugin_manager()
    rows = describe_plugins(pm)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']}  FAILED: {row['error']}")
            continue
        click.echo(f"{row['name']}  {row['distribution']} {row['version']}")
        click.echo(f"  hooks: {', '.join(row['hooks']) or '-'}")
    _print_workers(pm, rows, config_files, data_dir)


def _print_workers(pm, rows: list[dict], config_files, data_dir) -> None:
    from bmo.server.workers.listing import read_workers, workers_lines

    workers = read_workers(pm, config_files, data_dir)
    if workers:
        click.echo("")
        for line in workers_lines(workers, rows):
            click.echo(line)
