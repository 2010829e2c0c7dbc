"""What ``bmo plugins`` adds for ``bmo serve --workers N``: each worker's plugins, read from the shared store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bmo.server.workers.registry import worker_rows

_ROWS = ("SELECT hostname, worker_id, pid, started_at, last_seen, stopped_at, in_flight, streams, counts, plugins "
         "FROM bmo_workers ORDER BY hostname, worker_id")


def _data_dir(pm, config_files, data_dir) -> Path | None:
    """--data-dir, BMO_DATA_DIR, else the config's; None when the config cannot be read (the listing still prints)."""
    direct = data_dir or os.environ.get("BMO_DATA_DIR")
    if direct:
        return Path(direct).expanduser().absolute()
    from bmo.config import ConfigError, load_config
    from bmo.host import resolve_data_dir

    try:
        return resolve_data_dir(load_config(pm, config_files=tuple(config_files)))
    except ConfigError:
        return None


def read_workers(pm, config_files=(), data_dir=None) -> list[dict]:
    """The registry's rows (as the posture shows them, plus each one's plugin list); [] without a registry."""
    import apsw

    from bmo.store import DB_FILENAME

    directory = _data_dir(pm, config_files, data_dir)
    path = directory / DB_FILENAME if directory else None
    if path is None or not path.exists():
        return []
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error:
        return []
    try:
        conn.setbusytimeout(2000)
        cursor = conn.execute(_ROWS)
        names = [d[0] for d in cursor.getdescription()]
        raw = [dict(zip(names, row)) for row in cursor]
    except apsw.Error:  # no registry yet: no server has shared this store
        return []
    finally:
        conn.close()
    shown = worker_rows(raw, time.time())
    for row, worker in zip(raw, shown):
        worker["plugin_list"] = json.loads(row["plugins"] or "[]")
    return shown


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
