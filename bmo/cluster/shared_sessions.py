"""What the coordinator does differently when its store is shared: a busy session is a lease, runs log
their events, and a cancel or a dead holder's run can come from or go to another server.

One :class:`SharedSessions` per coordinator, only when ``bmo.cluster.store_is_shared(config)``; the
single-process default never builds one. Its keeper task (one per process) renews this process's
leases every third of ``[store] lease_ttl_s``, reads their cancel requests every
:data:`CANCEL_POLL_S`, sweeps runs whose holder died every TTL, and prunes finished runs' event logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from bmo.agent import run_outcomes
from bmo.agent.errors import SessionBusy
from bmo.agent.events import RunFinished
from bmo.agent.run import Run
from bmo.cluster import challenges, leases, liveness, run_log, takeover
from bmo.cluster.identity import worker_id

CANCEL_POLL_S = 1.0  # a cancel asked on another server reaches the run within about this
DELETE_WAIT_S = 10.0  # a session delete waits this long for its run elsewhere to stop, as a local delete does
LEASE_LOST = "lease lost: another server took this session over"


class SharedSessions:
    """Leases, event logs, cross-process cancel and crash take-over for one coordinator."""

    def __init__(self, host: Any):
        self.host = host
        self.db = host.db
        self.holder = worker_id()
        self.me = liveness.me(self.holder, time.time())  # before any request of this process: its rows are later
        self.ttl_s = float(host.config.section("store").lease_ttl_s)
        self._held: dict[str, Run] = {}
        self._challenges: set[str] = set()  # ids of this process's permission challenges, waiting in the store
        self.broker: Any = None  # the coordinator's PermissionBroker: resolves the answers given elsewhere
        self._keeper: asyncio.Task | None = None

    @classmethod
    def start_for(cls, host: Any, closer: takeover.Closer) -> SharedSessions:
        """The coordinator's, keeper started; ``closer`` closes a dead holder's runs as start-up recovery would."""
        takeover.register_closer(host, closer)
        shared = cls(host)
        shared.start()
        return shared

    # -- runs of this process --------------------------------------------------------
    def new_run(self, *args: Any, **kw: Any) -> run_log.LoggedRun:
        return run_log.LoggedRun(*args, write_soon=self.db.write_soon, record=self.host.emit, **kw)

    def claim(self, session_id: str, run_id: str):
        """The writer job that claims the session's lease for ``run_id`` (SessionBusy while another holds it)."""
        return leases.claim_job(session_id, run_id, self.holder, self.ttl_s, takeover.closers_of(self.host))

    def hold(self, run: Run) -> None:
        """``run`` claimed its lease: renew it while it goes."""
        self._held[run.id] = run

    def end_job(self, run: Run) -> Callable[[Any], None] | None:
        """``run`` is ending: its events so far queued to the log, and the job that frees its lease (for the write
        of its end row, so no client sees the answer while the lease still stands); None if it holds none."""
        if self._held.pop(run.id, None) is None:
            return None
        if isinstance(run, run_log.LoggedRun):
            run.flush_log()
        return leases.release_job(self.holder, run.id)

    def release(self, run: Run) -> None:
        """``run`` ended without its end row taking the lease along (cancelled before its loop ran): free it now."""
        if (job := self.end_job(run)) is not None:
            self.db.write_soon(job).add_done_callback(self._release_written)

    def _release_written(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:  # the lease expires by itself after the TTL
            self.host.emit("cluster.lease_release_failed", "warn", error=str(fut.exception()))

    # -- runs of other processes -----------------------------------------------------
    async def busy_run_id(self, session_id: str) -> str | None:
        """The run holding ``session_id``'s live lease (on any server), if any."""
        return await self.db.run_read(lambda conn: leases.live_lease(conn, session_id))

    async def follow(self, run_id: str) -> run_log.FollowedRun | None:
        """A run held elsewhere (or just finished there), to deliver from the event log; None if unknown."""
        found = await self.db.run_read(run_log.find_job(run_id))
        if found is None:
            return None
        session_id, requester, started_at = found
        return run_log.FollowedRun(run_id, session_id, requester, self.db.run_read,
                                   quiet=lambda: self.quiet_run(run_id), started_at=started_at)

    async def quiet_run(self, run_id: str) -> RunFinished | None:
        """A followed run is quiet: take it over if its lease expired; its end if that never reached the log."""
        await self.take_over([run_id])
        rows = await self.db.run_read(lambda conn: conn.execute(
            "SELECT r.outcome, r.finish_reason, r.error, r.error_status, r.finished_at,"
            " (SELECT COUNT(*) FROM run_event_log l WHERE l.run_id = r.id AND l.kind = 'run.finished')"
            " FROM runs r WHERE r.id = ?", (run_id,)).fetchall())
        if rows and (rows[0][0] is None or rows[0][5] or (rows[0][4] or 0) > time.time() - run_log.QUIET_S):
            return None  # still going, or its end is in the log (or on its way there)
        if not rows:
            return RunFinished(outcome=run_outcomes.ERROR, finish_reason="stop", error_status=500,
                               error="the run is gone (its session was deleted)")
        outcome, finish_reason, error, status, _, _ = rows[0]
        return RunFinished(outcome=outcome, finish_reason=finish_reason or "stop", error=error, error_status=status)

    async def session_runs(self, session_id: str, since: float) -> list[str]:
        """The ids of the session's runs in the store that started at ``since`` or later, or hold its
        live lease (on any server), oldest first: what a follower of the session elsewhere reads next."""
        return [r[0] for r in await self.db.run_read(lambda conn: conn.execute(
            "SELECT id FROM runs WHERE session_id = ? AND (started_at >= ? OR id IN"
            " (SELECT run_id FROM session_leases WHERE session_id = ? AND expires_at >= ?)) ORDER BY started_at",
            (session_id, since, session_id, time.time())).fetchall())]

    async def request_cancel(self, reason: str, *, session_id: str | None = None,
                             run_id: str | None = None) -> tuple[str, str] | None:
        """Ask the holder of a live lease to cancel its run; its (run id, session id), or None when none is live."""
        return await self.db.run_write(leases.request_cancel_job(session_id, run_id, reason))

    async def stop_for_delete(self, session_id: str, requester: str, cancel_elsewhere: Callable[..., Any]) -> None:
        """Before deleting ``session_id``: cancel its run on another server and wait for its end (DELETE_WAIT_S);
        SessionBusy naming the run if it has not ended by then (its holder stalled, or died and its lease lives)."""
        row = await cancel_elsewhere("session deleted", requester, session_id=session_id, wait_s=DELETE_WAIT_S)
        if row is not None and row["outcome"] is None and not (await self.take_over([row["id"]]))["runs_taken_over"]:
            raise SessionBusy(session_id, row["id"])

    def unleased_job(self, session_id: str) -> Callable[[Any], None]:
        """A job for the session's delete write: SessionBusy if a run claimed its lease since the delete's wait."""
        return leases.unleased_job(session_id)

    async def wait_finished(self, run_id: str, timeout_s: float) -> dict | None:
        """The run's row once it has an outcome (polled), or its row as it is at ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            row = await self.db.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
            if row is None or row["outcome"] is not None or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(0.05)

    # -- permission challenges -----------------------------------------------------------
    def challenge_raised(self, pending: Any) -> None:
        """A run of ours waits for a person: in the store too, so any server's native API can answer it."""
        if pending.run_id in self._held:  # a run in memory only (no lease) is nobody else's to answer
            self._challenges.add(pending.id)
            self.db.write_soon(challenges.publish_job(pending, self.holder)).add_done_callback(self._challenge_written)

    def challenge_ended(self, permission_id: str) -> None:
        if permission_id in self._challenges:
            self._challenges.discard(permission_id)
            self.db.write_soon(challenges.withdraw_job(permission_id)).add_done_callback(self._challenge_written)

    def _challenge_written(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:  # then only this process can answer it
            self.host.emit("cluster.challenge_write_failed", "warn", error=str(fut.exception()))

    async def challenges_elsewhere(self, session_id: str) -> list[dict]:
        """The session's challenges waiting on other live servers."""
        rows = await self.db.run_read(lambda conn: challenges.waiting(conn, session_id))
        return [row for row in rows if row["id"] not in self._challenges]  # ours are listed from memory

    async def answer_elsewhere(self, permission_id: str, session_id: str, decision: str, requester: str) -> bool:
        """Answer a challenge waiting on another server (it applies the answer within about a second)."""
        return await self.db.run_write(challenges.decide_job(permission_id, session_id, decision, requester))

    async def _read_decisions(self) -> None:
        ids = list(self._challenges)
        for permission_id, decision, requester in await self.db.run_read(
                lambda conn: challenges.decisions(conn, self.holder, ids)):
            if self.broker is not None:
                self.broker.resolve(permission_id, decision, requester)

    # -- the keeper ------------------------------------------------------------------
    def start(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name="bmo-cluster-keeper")

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        renew_every, sweep_every = self.ttl_s / 3, self.ttl_s
        renewed = loop.time()
        swept = loop.time() - sweep_every + CANCEL_POLL_S  # the first sweep a second after start: startups are done
        while True:
            await asyncio.sleep(min(CANCEL_POLL_S, renew_every))
            try:
                if self._held:
                    if loop.time() - renewed >= renew_every:
                        renewed = loop.time()
                        await self._renew()
                    else:
                        await self._read_cancels()
                if self._challenges:
                    await self._read_decisions()
                if loop.time() - swept >= sweep_every:
                    swept = loop.time()
                    await self.sweep()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not end renewals for good
                self.host.emit("cluster.keeper_failed", "warn", error=f"{type(exc).__name__}: {exc}")

    async def _renew(self) -> None:
        ids = list(self._held)
        kept = await self.db.run_write(leases.renew_job(self.holder, ids, self.ttl_s))
        still = {run_id for run_id, _ in kept}
        for run_id in ids:
            if run_id not in still and run_id in self._held:  # expired and taken over: stop writing its session
                self.host.emit("cluster.lease_lost", "warn", run_id=run_id, holder=self.holder)
                self._cancel(run_id, LEASE_LOST)
        for run_id, reason in kept:
            if reason is not None:
                self._cancel(run_id, reason)

    async def _read_cancels(self) -> None:
        ids = list(self._held)
        for run_id, reason in await self.db.run_read(lambda conn: leases.cancel_requests(conn, self.holder, ids)):
            self._cancel(run_id, reason)

    def _cancel(self, run_id: str, reason: str) -> None:
        run = self._held.get(run_id)
        if run is not None and not run.done and run.cancel_reason is None:
            run.cancel(reason)  # as a local cancel does; the asking server wrote the audit row

    async def sweep(self) -> dict[str, int]:
        """Close runs whose lease expired (their holder died) and other rows of dead processes; prune event logs."""
        counts = await self.take_over()
        counts.update(await self.close_orphans())
        await self.db.run_write(run_log.prune_job(time.time()))
        await self.db.run_write(challenges.prune_job(time.time()))
        return counts

    async def close_orphans(self) -> dict[str, int]:
        """Close the rows no lease covers whose process died (``bmo.cluster.liveness``); a read when there is none."""
        counts: dict[str, int] = {}
        for sweeper in liveness.sweepers_of(self.host):
            now = time.time()
            found = await self.db.run_read(lambda conn, s=sweeper: s.find(conn, now, self.me))
            if not found:
                continue

            def job(conn: Any, s: liveness.OrphanSweeper = sweeper, wanted: set = set(found)) -> dict[str, int]:
                return s.close(conn, [key for key in s.find(conn, time.time(), self.me) if key in wanted])

            for key, value in (await self.db.run_write(job)).items():
                counts[key] = counts.get(key, 0) + value
        if any(counts.values()):
            self.host.emit("cluster.orphans_closed", "warn", holder=self.holder, **counts)
        return counts

    async def take_over(self, run_ids: list[str] | None = None) -> dict[str, int]:
        """Close the unfinished runs (of ``run_ids``; None: all) whose lease expired; a read when there is none."""
        now = time.time()
        candidates = await self.db.run_read(lambda conn: takeover.stale_runs(conn, now, run_ids))
        if not candidates:
            return {"runs_taken_over": 0}
        job = takeover.sweep_job(takeover.closers_of(self.host), [run_id for run_id, _ in candidates])
        counts = await self.db.run_write(job)
        if counts["runs_taken_over"]:
            self.host.emit("cluster.runs_taken_over", "warn", holder=self.holder, **counts)
        return counts
