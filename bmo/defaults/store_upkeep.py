"""The store's background upkeep while serving: retention passes, and the data dir's server lock."""

from __future__ import annotations

import asyncio

from bmo.hookspecs import hookimpl

_TASK_KEY = "store.retention_task"
# The first pass waits this long after start, so a restart loop still prunes but start-up stays quick.
FIRST_PASS_DELAY_S = 10.0


async def _prune_forever(host, retention) -> None:
    from bmo.store.retention import prune

    await asyncio.sleep(min(FIRST_PASS_DELAY_S, retention.interval_s))
    while True:
        try:
            deleted = await prune(host.db, retention)
            if deleted:
                host.emit("store.pruned", "info", deleted=deleted)
        except Exception as exc:  # noqa: BLE001 - a failed pass is retried next period; serving goes on
            host.emit("store.prune_failed", "warn", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(retention.interval_s)


@hookimpl
def bmo_startup(host):
    retention = host.config.section("store").retention
    if retention.interval_s > 0:
        host.state[_TASK_KEY] = asyncio.create_task(_prune_forever(host, retention), name="bmo-store-retention")


@hookimpl
async def bmo_shutdown(host):
    from bmo.store.instance_lock import release

    task = host.state.pop(_TASK_KEY, None)
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    release(host)
