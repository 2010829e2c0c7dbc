"""The worker registry: a heartbeat row per serving process in the shared store, and the ``workers`` posture section.

It runs whenever the store is shared (``bmo serve --workers N``, ``[store] shared``, PostgreSQL):
every worker upserts its row every :data:`HEARTBEAT_S`, so any worker answering the posture shows
all of them, and one whose heartbeat is older than :data:`STALE_AFTER_S` as ``gone``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

from bmo.cluster.identity import store_is_shared, worker_id
from bmo.hookspecs import hookimpl
from bmo.store.statements import Statement

OWNER = "workers"
HEARTBEAT_S = 2.0
STALE_AFTER_S = 10.0  # five missed heartbeats: the process is gone (killed, or its host is)
FORGET_AFTER_S = 24 * 3600.0  # rows of processes gone this long are deleted at the next start
_STATE_KEY = "workers.registry"

# Portable DDL: the same text runs on SQLite and PostgreSQL; JSON is kept as TEXT.
MIGRATION_V1 = """
CREATE TABLE IF NOT EXISTS bmo_workers (
    hostname TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    stopped_at DOUBLE PRECISION,
    in_flight BIGINT NOT NULL DEFAULT 0,
    streams BIGINT NOT NULL DEFAULT 0,
    counts TEXT NOT NULL DEFAULT '{}',
    plugins TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (hostname, worker_id)
)
"""

_UPSERT = (
    "INSERT INTO bmo_workers (hostname, worker_id, pid, started_at, last_seen, stopped_at, in_flight, streams, "
    "counts, plugins) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?) ON CONFLICT (hostname, worker_id) DO UPDATE SET "
    "pid = excluded.pid, started_at = excluded.started_at, last_seen = excluded.last_seen, stopped_at = NULL, "
    "in_flight = excluded.in_flight, streams = excluded.streams, counts = excluded.counts, plugins = excluded.plugins"
)
_STOPPED = ("UPDATE bmo_workers SET stopped_at = ?, last_seen = ?, in_flight = 0, streams = 0 "
            "WHERE hostname = ? AND worker_id = ? AND pid = ?")
_FORGET = "DELETE FROM bmo_workers WHERE last_seen < ?"
_ALL = ("SELECT hostname, worker_id, pid, started_at, last_seen, stopped_at, in_flight, streams, counts, plugins "
        "FROM bmo_workers ORDER BY hostname, worker_id")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Heartbeat:
    """This process's row: who it is, and what it is doing now."""

    def __init__(self, host: Any):
        self.host = host
        self.hostname = socket.gethostname()
        self.worker_id = worker_id()
        self.pid = os.getpid()
        self.started_at = time.time()
        self.task: asyncio.Task | None = None
        self.plugins = json.dumps(_plugin_list(host))

    def live(self) -> dict:
        """In-flight requests, open streams and counts since start, read now."""
        from bmo.server.capacity import capacity_of
        from bmo.server.workers.worker import current_role

        role = current_role()
        capacity = capacity_of(self.host)
        counts = {"requests": role.stats.requests if role else None,
                  "server_errors": role.stats.server_errors if role else None,
                  "streams_refused": capacity.refused}
        return {"in_flight": role.stats.in_flight if role else None, "streams": capacity.active, "counts": counts}

    def row(self) -> Statement:
        live = self.live()
        return Statement(_UPSERT, (self.hostname, self.worker_id, self.pid, self.started_at, time.time(),
                                   live["in_flight"] or 0, live["streams"], json.dumps(live["counts"]),
                                   self.plugins))

    async def beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.host.db.run_write(self.row())
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; serving goes on
                self.host.emit("serve.heartbeat_failed", "warn", error=f"{type(exc).__name__}: {exc}")


def _plugin_list(host: Any) -> list[dict]:
    from bmo.plugins import describe_plugins

    return [{k: row[k] for k in ("name", "version", "error") if k in row} for row in describe_plugins(host.pm)]


def worker_rows(rows: list[dict], now: float, me: Heartbeat | None = None) -> list[dict]:
    """The registry's rows as the posture shows them, each with its state: serving, stopped or gone."""
    out = []
    for row in rows:
        counts = json.loads(row["counts"] or "{}")
        in_flight, streams = row["in_flight"], row["streams"]
        mine = me is not None and (row["hostname"], row["worker_id"], row["pid"]) == (me.hostname, me.worker_id, me.pid)
        if mine:  # the answering worker reports itself as of now, not as of its last beat
            live = me.live()
            in_flight, streams, counts = live["in_flight"] or 0, live["streams"], live["counts"]
        if row["stopped_at"] is not None:
            state = "stopped"
        elif mine or now - row["last_seen"] <= STALE_AFTER_S:
            state = "serving"
        else:
            state = "gone"
        out.append({"worker": row["worker_id"], "hostname": row["hostname"], "pid": row["pid"], "state": state,
                    "started": _iso(row["started_at"]), "last_seen": _iso(now if mine else row["last_seen"]),
                    "in_flight": in_flight if state == "serving" else 0,
                    "streams": streams if state == "serving" else 0, "counts": counts,
                    "plugins": len(json.loads(row["plugins"] or "[]")), "answering": mine})
    return out


async def posture_for(host: Any) -> dict:
    """Every process on this store: per-worker rows and totals over the serving ones, read from the store."""
    me = host.state.get(_STATE_KEY)
    section: dict[str, Any] = {"this_worker": me.worker_id if me else worker_id(), "heartbeat_s": HEARTBEAT_S,
                               "stale_after_s": STALE_AFTER_S}
    try:
        rows = await host.db.fetchall(_ALL)
    except Exception as exc:  # noqa: BLE001 - posture must answer even when the store does not
        section["error"] = f"{type(exc).__name__}: {exc}"
        return section
    workers = worker_rows(rows, time.time(), me)
    serving = [w for w in workers if w["state"] == "serving"]
    section["serving"] = len(serving)
    section["totals"] = {
        "in_flight": sum(w["in_flight"] for w in serving),
        "streams": sum(w["streams"] for w in serving),
        "requests": sum(w["counts"].get("requests") or 0 for w in serving),
        "server_errors": sum(w["counts"].get("server_errors") or 0 for w in serving),
    }
    section["workers"] = workers
    return section


@hookimpl
def bmo_migrations(register):
    register(OWNER, 1, MIGRATION_V1)


@hookimpl
def bmo_posture(register, host):
    if store_is_shared(host.config):
        register("workers", posture_for)


@hookimpl
async def bmo_startup(host):
    if not store_is_shared(host.config):
        return
    beat = host.state[_STATE_KEY] = Heartbeat(host)
    await host.db.run_write(Statement(_FORGET, (time.time() - FORGET_AFTER_S,)))
    await host.db.run_write(beat.row())  # seen from the first request on
    beat.task = asyncio.create_task(beat.beat_forever(), name="bmo-worker-heartbeat")


@hookimpl
async def bmo_shutdown(host):
    beat = host.state.pop(_STATE_KEY, None)
    if beat is None:
        return
    beat.task.cancel()
    try:
        await beat.task
    except asyncio.CancelledError:
        pass
    now = time.time()
    try:
        await host.db.run_write(Statement(_STOPPED, (now, now, beat.hostname, beat.worker_id, beat.pid)))
    except Exception as exc:  # noqa: BLE001 - the row then goes stale and is shown as gone
        host.emit("serve.heartbeat_failed", "warn", error=f"{type(exc).__name__}: {exc}")
