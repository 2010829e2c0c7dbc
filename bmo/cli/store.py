"""``bmo store``: upkeep of the SQLite store (``bmo store prune [--dry-run]``)."""

from __future__ import annotations

import asyncio
import json

import click

from bmo.cli.options import config_option, data_dir_option

EXAMPLES = """
\b
Examples:
  bmo store prune --dry-run        what [store.retention] lets go now, per family and table
  bmo store prune                  delete it (small batches; a running server keeps writing)
  bmo store prune --json
"""


@click.group("store")
def store_group() -> None:
    """The SQLite store: retention."""


@store_group.command("prune", epilog=EXAMPLES)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@config_option
@data_dir_option
def prune(dry_run: bool, as_json: bool, config_files, data_dir) -> None:
    """Delete rows older or more numerous than [store.retention] allows."""
    from bmo.cli.main import plugin_manager
    from bmo.cli.options import load_or_exit
    from bmo.host import resolve_data_dir
    from bmo.store import DB_FILENAME

    pm = plugin_manager()
    config = load_or_exit(pm, config_files, {"storage.data_dir": data_dir})
    path = resolve_data_dir(config) / DB_FILENAME
    if not path.exists():
        raise click.ClickException(f"no database at {path}: pass --data-dir (or BMO_DATA_DIR) of a server's data")
    counts = asyncio.run(_run(pm, path, config.section("store").retention, dry_run))
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "deleted" if not dry_run else "would_delete": counts}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    if not any(n for tables in counts.values() for n in tables.values()):
        click.echo(f"nothing to prune in {path}")
        return
    for family, tables in counts.items():
        for table, n in tables.items():
            click.echo(f"{family:<9} {table:<26} {verb} {n}")


async def _run(pm, path, retention, dry_run: bool) -> dict:
    from bmo.store import Database, collect_migrations
    from bmo.store.retention import preview, prune

    db = Database(path)
    await db.open(collect_migrations(pm))  # the retention indexes come with the migrations
    try:
        return await (preview(db, retention) if dry_run else prune(db, retention))
    finally:
        await db.close()
