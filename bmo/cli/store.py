"""``bmo store``: the store's upkeep, on SQLite or PostgreSQL (``migrate``, ``check``, ``prune``)."""

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

MIGRATE_EXAMPLES = """
\b
Examples:
  bmo store migrate                                  the data dir's SQLite file
  BMO_STORE_URL=postgresql://bmo@db/bmo bmo store migrate
\b
  applied agent:1 ... openai_compat:7 workers:1 (18 migrations) to postgresql://bmo@db/bmo
"""

CHECK_EXAMPLES = """
\b
Examples:
  bmo store check
  bmo store check --json
\b
  store       postgresql://bmo:***@db:5432/bmo
  engine      PostgreSQL 15.14
  migrations  9 applied, 0 pending
  integrity   ok
"""


@click.group("store")
def store_group() -> None:
    """The store (SQLite in the data dir, or PostgreSQL at [store] url): migrations, checks, retention."""


def _target(config_files, data_dir):
    """(plugin manager, config, the unopened database) for the store the configuration names."""
    from bmo.cli.main import plugin_manager
    from bmo.cli.options import load_or_exit
    from bmo.host import resolve_data_dir
    from bmo.store import StoreUrlError, database_for

    pm = plugin_manager()
    config = load_or_exit(pm, config_files, {"storage.data_dir": data_dir})
    try:
        db = database_for(config.section("store").url, resolve_data_dir(config))
    except StoreUrlError as exc:
        raise click.ClickException(str(exc)) from None
    return pm, config, db


def _require_existing(db) -> None:
    path = getattr(db, "path", None)
    if path is not None and not path.exists():
        raise click.ClickException(f"no database at {path}: pass --data-dir (or BMO_DATA_DIR) of a server's data")


@store_group.command("migrate", epilog=MIGRATE_EXAMPLES)
@config_option
@data_dir_option
def migrate(config_files, data_dir) -> None:
    """Create the store's tables or bring them to this version (what a server does at start)."""
    from bmo.store import StoreError, collect_migrations

    pm, _config, db = _target(config_files, data_dir)

    async def run() -> list[str]:
        try:
            await db.open(collect_migrations(pm))
            return db.applied_migrations
        finally:
            await db.close()

    try:
        applied = asyncio.run(run())
    except StoreError as exc:
        raise click.ClickException(f"{db.describe()}: {exc}") from None
    if applied:
        click.echo(f"applied {' '.join(applied)} ({len(applied)} migrations) to {db.describe()}")
    else:
        click.echo(f"{db.describe()} is up to date")


@store_group.command("check", epilog=CHECK_EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@config_option
@data_dir_option
def check(as_json: bool, config_files, data_dir) -> None:
    """Reach the store and say whether it is sound and migrated; exits 1 when not. Writes nothing."""
    from bmo.store import StoreError, collect_migrations

    pm, _config, db = _target(config_files, data_dir)
    _require_existing(db)
    try:
        report = asyncio.run(_check(db, collect_migrations(pm)))
    except StoreError as exc:
        report = {"store": db.describe(), "ok": False, "error": str(exc)}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif "error" in report:
        click.echo(f"store       {report['store']}\nerror       {report['error']}")
    else:
        pending = report["pending"]
        click.echo(f"store       {report['store']}\nengine      {report['engine']}\n"
                   f"migrations  {report['applied']} applied, {len(pending)} pending"
                   f"{' (' + ' '.join(pending) + '; run bmo store migrate)' if pending else ''}\n"
                   f"integrity   {report['integrity']}")
    if not report["ok"]:
        raise SystemExit(1)


async def _check(db, migrations) -> dict:
    from bmo.store.migrations import pending_migrations

    def inspect(conn) -> dict:
        pending = pending_migrations(conn, migrations, db.dialect)
        if db.dialect == "postgresql":
            engine = "PostgreSQL " + conn.execute("SHOW server_version").fetchall()[0][0]
            integrity = "ok" if conn.execute("SELECT 1").fetchall() == [(1,)] else "no answer"
        else:
            engine = "SQLite " + conn.execute("SELECT sqlite_version()").fetchall()[0][0]
            found = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            integrity = "ok" if found == ["ok"] else "; ".join(found[:5])
        return {"store": db.describe(), "engine": engine, "applied": len(migrations) - len(pending),
                "pending": pending, "integrity": integrity, "ok": not pending and integrity == "ok"}

    await db.open_for_reads()
    try:
        return await db.run_read(inspect)
    finally:
        await db.close()


@store_group.command("prune", epilog=EXAMPLES)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@config_option
@data_dir_option
def prune(dry_run: bool, as_json: bool, config_files, data_dir) -> None:
    """Delete rows older or more numerous than [store.retention] allows."""
    pm, config, db = _target(config_files, data_dir)
    _require_existing(db)
    counts = asyncio.run(_prune(pm, db, config.section("store").retention, dry_run))
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "deleted" if not dry_run else "would_delete": counts}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    if not any(n for tables in counts.values() for n in tables.values()):
        click.echo(f"nothing to prune in {db.describe()}")
        return
    for family, tables in counts.items():
        for table, n in tables.items():
            click.echo(f"{family:<9} {table:<26} {verb} {n}")


async def _prune(pm, db, retention, dry_run: bool) -> dict:
    from bmo.store import collect_migrations
    from bmo.store.retention import preview, prune

    await db.open(collect_migrations(pm))  # the retention indexes come with the migrations
    try:
        return await (preview(db, retention) if dry_run else prune(db, retention))
    finally:
        await db.close()
