"""Reaching a test's store on either backend from outside a server: the environment, and jobs run on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bmo.store import database_for


def store_env(store_url: str) -> dict[str, str]:
    """The environment that points a ``bmo`` command at ``store_url``."""
    return {"BMO_STORE_URL": store_url} if store_url else {}


async def on_store(store_url: str, data_dir: Path, job: Callable[[Any], Any], *, write: bool = False) -> Any:
    """Run ``job(conn)`` on the store (a writer job when ``write``), as a separate process's connection would."""
    db = database_for(store_url, data_dir)
    await db.open()
    try:
        return await (db.run_write(job) if write else db.run_read(job))
    finally:
        await db.close()


async def column(store_url: str, data_dir: Path, sql: str) -> list:
    """The first column of ``sql``'s rows, sorted."""
    return sorted(r[0] for r in await on_store(store_url, data_dir, lambda conn: conn.execute(sql).fetchall()))
