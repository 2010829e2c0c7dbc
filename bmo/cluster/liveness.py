"""Whether the server process that wrote a row is still alive, for rows no session lease covers.

Every server on a shared store keeps a heartbeat row in ``bmo_workers`` (``bmo.server.workers.registry``):
its host name and worker id, when it started, when it last beat and when it stopped. A row its owner
marked with its writer (``holder`` = :func:`bmo.cluster.worker_id`, ``holder_host`` = the host name)
belongs to a dead process when that heartbeat is missing, stopped, older than the registry's
``STALE_AFTER_S``, or started after the row did (the worker was restarted under the same id).

Owners of such rows register an :class:`OrphanSweeper`; the keeper's sweep (``bmo.cluster.shared_sessions``)
runs each: a read that finds the dead rows, then, only if there are some, a writer job closing them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, NamedTuple

from bmo.server.workers.registry import STALE_AFTER_S

SWEEPERS_KEY = "cluster.orphan_sweepers"
# Joined to an owner's table aliased ``t``: the writer's heartbeat columns, NULL when it has none.
HEARTBEAT_JOIN = "LEFT JOIN bmo_workers w ON w.hostname = t.holder_host AND w.worker_id = t.holder"
HEARTBEAT_COLUMNS = "t.holder, t.holder_host, w.started_at, w.last_seen, w.stopped_at"
ROW_TIME_SLACK_S = 0.001  # row times may be kept to the millisecond, heartbeat times are not


class Me(NamedTuple):
    """This process, as its rows name it; its own rows started before ``started`` are a predecessor's."""

    holder: str
    host: str
    started: float


def me(holder: str, started: float) -> Me:
    return Me(holder, socket.gethostname(), started)


def holder_dead(row_started: float, heartbeat: tuple, now: float, mine: Me) -> bool:
    """True when the process that wrote a row started at ``row_started`` is gone (``heartbeat``: HEARTBEAT_COLUMNS)."""
    holder, host, beat_started, last_seen, stopped_at = heartbeat
    if (holder, host) == (mine.holder, mine.host):  # this very id: alive if it is this process's own row
        return row_started + ROW_TIME_SLACK_S < mine.started
    if beat_started is None or stopped_at is not None or now - last_seen > STALE_AFTER_S:
        return True  # never beat here (or forgotten after a day), stopped, or silent for five beats
    return beat_started > row_started + ROW_TIME_SLACK_S  # restarted under the same id since


class OrphanSweeper(NamedTuple):
    """``find(conn, now, mine)`` -> keys of rows whose writer died; ``close(conn, keys)`` -> counts (a writer job)."""

    find: Callable[[Any, float, Me], list[str]]
    close: Callable[[Any, list[str]], dict[str, int]]


def register_sweeper(host: Any, sweeper: OrphanSweeper) -> None:
    """Add ``sweeper`` to the ones this host's keeper runs at every sweep (once per sweeper)."""
    sweepers = host.state.setdefault(SWEEPERS_KEY, [])
    if sweeper not in sweepers:
        sweepers.append(sweeper)


def sweepers_of(host: Any) -> list[OrphanSweeper]:
    return list(host.state.get(SWEEPERS_KEY, ()))
