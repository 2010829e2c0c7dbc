"""An ``Idempotency-Key`` claimed in the shared store, so a retry that lands on another server joins the run
the first attempt started there (or replays its answer), as a retry on the same server does.

Only on a shared store (``bmo.cluster.store_is_shared``); the single-process default keeps its in-memory
:class:`~bmo_openai_compat.retries.RetryIndex` alone. The first attempt claims the key's row
(``openai_compat_idempotency_keys``, keyed by a hash of the requester and the key) before it has a run;
once its run starts, the row names the run's session and lives :data:`KEY_TTL_S` from then. A retry
elsewhere waits while the row is pending, then follows the run from the run event log
(``bmo.cluster.run_log.FollowedRun``): the first attempt's run logs its events even when its session
only lives in memory (a stateless request). Expired rows are deleted by the next claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, NamedTuple

import msgspec

from bmo.agent import run_outcomes
from bmo.agent.events import RunFinished
from bmo.cluster import liveness, run_log, takeover
from bmo_openai_compat.retries import KEY_TTL_S

PENDING_S = 120.0  # a first attempt gets this long to start its run (router, session) before a retry starts one
TABLE = "openai_compat_idempotency_keys"
CLAIM = (f"INSERT INTO {TABLE} (key_hash, intent, request_id, session_id, holder, holder_host, claimed_at,"
         " expires_at) VALUES (?, ?, ?, NULL, ?, ?, ?, ?) ON CONFLICT (key_hash) DO UPDATE SET"
         " intent = excluded.intent, request_id = excluded.request_id, session_id = NULL, holder = excluded.holder,"
         " holder_host = excluded.holder_host, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at"
         f" WHERE {TABLE}.expires_at < ? OR {TABLE}.request_id = ? RETURNING request_id")
SELECT = f"SELECT intent, request_id, session_id FROM {TABLE} WHERE key_hash = ? AND expires_at >= ?"
_decode_finished = msgspec.json.Decoder(RunFinished).decode


class Seen(NamedTuple):
    """Another request's live claim of the key: its intent, request (= run) id, and session once its run started."""

    intent: str
    request_id: str
    session_id: str | None


def key_hash(scoped_key: str) -> str:
    """The row's key: the requester and the client's key, hashed (a store's text holds no NUL, and no raw key)."""
    return hashlib.sha256(scoped_key.encode()).hexdigest()


class SharedKey:
    """One request's view of its key's row: claim it, or find the run another request started for it."""

    def __init__(self, db: Any, cluster: Any, scoped_key: str, intent: str, request_id: str):
        self.db = db
        self.cluster = cluster
        self.hash = key_hash(scoped_key)
        self.intent = intent
        self.request_id = request_id
        self.claimed = False  # this request holds the row
        self.replace = ""  # a request id whose claim this request may take over (see claim_or_find)
        self.started = False  # and its run started (the row then outlives the request)

    async def claim_or_find(self) -> Seen | None:
        """Claim the key (None), or the live claim of another request. A claim of :attr:`replace` (a request
        whose run was stopped, or whose server died before it started one) is taken over by this request."""
        (holder, host, _), replace = self.cluster.me, self.replace  # this process, as its rows name it

        def job(conn: Any) -> Seen | None:
            now = time.time()
            # Rows of keys past their lifetime go here, with the events of a run that never reached its end row.
            conn.execute(f"DELETE FROM run_event_log WHERE run_id IN (SELECT k.request_id FROM {TABLE} k"
                         " WHERE k.expires_at < ?) AND NOT EXISTS (SELECT 1 FROM runs r"
                         " WHERE r.id = run_event_log.run_id)", (now,))
            conn.execute(f"DELETE FROM {TABLE} WHERE expires_at < ?", (now,))
            if conn.execute(CLAIM, (self.hash, self.intent, self.request_id, holder, host, now, now + PENDING_S,
                                    now, replace)).fetchall():  # "" matches no request id
                return None
            rows = conn.execute(SELECT, (self.hash, now)).fetchall()
            return Seen(*rows[0]) if rows else None

        seen = await self.db.run_write(job)
        self.claimed = seen is None
        return seen

    async def wait_started(self, seen: Seen) -> Seen | None:
        """``seen`` once its run started; None if its request let the key go, or its server died first (then
        :attr:`replace` names it)."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while seen is not None and seen.session_id is None:
            await asyncio.sleep(run_log.POLL_S)
            rows = await self.db.run_read(lambda conn: conn.execute(SELECT, (self.hash, time.time())).fetchall())
            request_id = seen.request_id
            seen = Seen(*rows[0]) if rows and rows[0][1] == request_id else None
            if seen is not None and seen.session_id is None and loop.time() - checked >= run_log.QUIET_S:
                checked = loop.time()
                if await self._holder_dead(request_id):
                    self.replace = request_id
                    return None
        return seen

    async def _holder_dead(self, request_id: str) -> bool:
        """True when the server that claimed the key for ``request_id`` is gone (``bmo.cluster.liveness``)."""
        rows = await self.db.run_read(lambda conn: conn.execute(
            f"SELECT t.claimed_at, {liveness.HEARTBEAT_COLUMNS} FROM {TABLE} t {liveness.HEARTBEAT_JOIN}"
            " WHERE t.key_hash = ? AND t.request_id = ?", (self.hash, request_id)).fetchall())
        return bool(rows) and liveness.holder_dead(rows[0][0], tuple(rows[0][1:]), time.time(), self.cluster.me)

    async def given_up(self, run_id: str) -> bool:
        """True when ``run_id`` ended cancelled (a stopped first attempt), or its server died before its end: a
        retry then starts afresh, as after a restart of a single server."""
        rows = await self.db.run_read(lambda conn: conn.execute(
            "SELECT event FROM run_event_log WHERE run_id = ? AND kind = ?", (run_id, run_log.FINISHED_KIND)).fetchall())
        if rows:
            end = _decode_finished(rows[0][0])
            return end.outcome == run_outcomes.CANCELLED or end.error == takeover.INTERRUPTED  # a take-over's end
        return await self._holder_dead(run_id)

    def follow(self, seen: Seen, requester: str) -> run_log.FollowedRun:
        """The run ``seen`` names, read from the event log; ended as interrupted if its server dies first."""
        return run_log.FollowedRun(seen.request_id, seen.session_id or "", requester, self.db.run_read,
                                   quiet=lambda: self._holder_gone(seen.request_id))

    async def _holder_gone(self, run_id: str) -> RunFinished | None:
        if await self.db.run_read(lambda conn: conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchall()):
            return await self.cluster.quiet_run(run_id)  # a durable session's run (or one that ended): as a resume's
        if not await self._holder_dead(run_id):
            return None
        return RunFinished(outcome=run_outcomes.ERROR, finish_reason="stop", error=takeover.INTERRUPTED,
                           error_status=500)

    def run_started(self, session_id: str) -> None:
        """This request's run started: the row names its session, so retries follow it, for KEY_TTL_S."""
        if not self.claimed:
            return
        self.started = True
        job = _update(f"UPDATE {TABLE} SET session_id = ?, expires_at = ? WHERE key_hash = ? AND request_id = ?",
                      lambda now: (session_id, now + KEY_TTL_S, self.hash, self.request_id))
        self.db.write_soon(job).add_done_callback(self._written)

    def release(self) -> None:
        """The request ends without having started a run: a retry waiting elsewhere starts its own now."""
        if self.claimed and not self.started:
            self.claimed = False
            job = _update(f"DELETE FROM {TABLE} WHERE key_hash = ? AND request_id = ?",
                          lambda now: (self.hash, self.request_id))
            self.db.write_soon(job).add_done_callback(self._written)

    def _written(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:  # the row expires by itself
            self.cluster.host.emit("openai_compat.idempotency_key_write_failed", "warn", error=str(fut.exception()))


def _update(sql: str, params: Any):
    def job(conn: Any) -> None:
        conn.execute(sql, params(time.time()))

    return job
