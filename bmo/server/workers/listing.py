"""What ``bmo plugins`` adds for ``bmo serve --workers N``: each worker's plugins, read from the shared store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bmo.server.workers.registry import worker_rows
from bmo.store import DB_FILENAME, database_for

_ROWS = ("SELECT hostname, worker_id, pid, started_at, last_seen, stopped_at, in_flight, streams, counts, plugins "
         "FROM bmo_workers ORDER BY hostname, worker_id")


def _store(pm, config_files, data_dir) -> tuple[str, Path] | None:
    """The store's url and data dir, from --data-dir / BMO_DATA_DIR and the config layers; None when unreadable."""
    from bmo.config import ConfigError, load_config
    from bmo.host import resolve_data_dir

    try:
        config = load_config(pm, config_files=tuple(config_files), overrides={"storage.data_dir": data_dir})
    except ConfigError:  # the plugin listing still prints; only the workers' part is left out
        return None
    return config.section("store").url, resolve_data_dir(config)


def read_workers(pm, config_files=(), data_dir=None) -> list[dict]:
    """The registry's rows (as the posture shows them, plus each one's plugin list); [] without a registry."""
    found = _store(pm, config_files, data_dir)
    if found is None:
        return []
    url, directory = found
    if not url and not (directory / DB_FILENAME).exists():
        return []  # no server ever ran here: do not create a database just to look
    try:
        raw = asyncio.run(_rows(url, directory))
    except Exception:  # noqa: BLE001 - no registry yet, or the store is unreachable: the listing stands alone
        return []
    shown = worker_rows(raw, time.time())
    for row, worker in zip(raw, shown):
        worker["plugin_list"] = json.loads(row["plugins"] or "[]")
    return shown


async def _rows(url: str, directory: Path) -> list[dict]:
    db = database_for(url, directory)
    await db.open(())
    try:
        return await db.fetchall(_ROWS)
    finally:
        await db.close()


def workers_lines(workers: list[dict], local: list[dict]) -> list[str]:
    """One line per worker: state, and whether it loaded what this command loads."""
    mine = {(r["name"], r.get("version"), r.get("error")) for r in local}
    lines = ["Workers on this data dir's store (their own plugin lists):"]
    for w in workers:
        theirs = {(p["name"], p.get("version"), p.get("error")) for p in w["plugin_list"]}
        if theirs == mine:
            compared = "same plugins as above"
        else:
            missing = sorted(n for n, *_ in mine - theirs)
            extra = sorted(f"{n} {v or ''}".strip() + (" FAILED" if e else "") for n, v, e in theirs - mine)
            compared = "differs: " + "; ".join(
                part for part in (f"not loaded {', '.join(missing)}" if missing else "",
                                  f"loaded {', '.join(extra)}" if extra else "") if part)
        seen = f"since {w['started']}" if w["state"] == "serving" else f"last seen {w['last_seen']}"
        lines.append(f"  {w['worker']}  pid {w['pid']}  {w['state']}  {seen}  {compared}")
    return lines
