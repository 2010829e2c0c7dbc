"""The run event log: a running run's events in the shared store, so a server that does not hold the
run can follow it (``X-BMO-Resume`` on another process) and deliver what the starter's client got.

The holder's :class:`LoggedRun` appends every event it emits, in order, as msgspec JSON; the rows
of :data:`FLUSH_S` go to the writer as one job (``write_soon``), and the run's last rows at once. A
:class:`FollowedRun` elsewhere reads them back in order, polling, until the run's ``run.finished``
row, which a take-over writes too when the holder died (``bmo.cluster.takeover``). Rows are
deleted :data:`KEEP_FINISHED_S` after their run finished, the time a finished run stays resumable in
the holder's memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from bmo.agent.events import AnyEvent, RunFinished
from bmo.agent.run import Run
from bmo.store import Batch, Statement

KEEP_FINISHED_S = 600.0  # as the coordinator's FINISHED_RUN_TTL_S
POLL_S = 0.05  # a follower's read interval while its run is quiet
QUIET_S = 1.0  # a follower checks its run's lease after this long without an event
FLUSH_S = 0.02  # a streamed answer's chunks of this long are one writer job, not one each
INSERT = "INSERT INTO run_event_log (run_id, seq, kind, event, at) VALUES (?, ?, ?, ?, ?)"
FINISHED_KIND = RunFinished.__struct_config__.tag
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(AnyEvent).decode


class LoggedRun(Run):
    """A run on a shared store: each event is also appended to the run event log."""

    def __init__(self, *args: Any, write_soon: Callable[[Any], asyncio.Future], record: Callable[..., Any], **kw: Any):
        super().__init__(*args, **kw)
        self._write_soon = write_soon
        self._record_failure = record
        self._seq = 0
        self._rows: list[Statement] = []

    def emit(self, event: AnyEvent) -> None:
        if self.result is not None:
            return
        self._seq += 1
        kind = type(event).__struct_config__.tag
        self._rows.append(Statement(INSERT, (self.id, self._seq, kind, _encode(event).decode(), time.time())))
        if len(self._rows) == 1:  # the first row of a batch: the events of the next FLUSH_S join its job
            asyncio.get_running_loop().call_later(FLUSH_S, self.flush_log)
        super().emit(event)
        if self.result is not None:  # the end: written now, before the lease goes
            self.flush_log()

    def flush_log(self) -> None:
        """Queue the events not yet written as one writer job (also called as the run ends, before its lease goes)."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        self._write_soon(Batch(rows)).add_done_callback(self._written)

    def _written(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:  # followers elsewhere miss events; the run goes on
            self._record_failure("cluster.run_log_failed", "warn", run_id=self.id, error=str(fut.exception()))


class FollowedRun:
    """A run another server holds, read from the log; what ``RunDelivery`` needs of a ``Run``."""

    def __init__(self, run_id: str, session_id: str, requester: str, read: Callable[..., Any],
                 quiet: Callable[[], Awaitable[RunFinished | None]] | None = None, started_at: float = 0.0):
        self.id = run_id
        self.session_id = session_id
        self.requester = requester
        self.started_at = started_at
        self.error_detail: str | None = None
        self.result: RunFinished | None = None
        self._read = read
        self._seq = 0  # the furthest log row read so far, by events() or wait()
        # Called after each QUIET_S without an event: closes a dead holder's run, or says how a run whose end
        # never reached the log ended (its holder could not write it), so a follower never waits for ever.
        self._quiet = quiet

    @property
    def done(self) -> bool:
        return self.result is not None

    async def events(self) -> AsyncIterator[AnyEvent]:
        """Every logged event from the first, then new ones as they land, ending with RunFinished."""
        async for event in self._tail(0, every=True):
            yield event

    async def _tail(self, seq: int, *, every: bool) -> AsyncIterator[AnyEvent]:
        """The events after ``seq`` (``every``: all of them; else only the end), polling until the run's end."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            rows = await self._read(lambda conn: conn.execute(
                "SELECT seq, kind, event FROM run_event_log WHERE run_id = ? AND seq > ? ORDER BY seq",
                (self.id, seq)).fetchall())
            for row_seq, kind, body in rows:
                seq = row_seq
                self._seq = max(self._seq, seq)
                if not every and kind != FINISHED_KIND:
                    continue  # wait() looks for the end alone: the rest is not decoded
                event = _decode(body)
                yield event
                if isinstance(event, RunFinished):
                    self.result = event
                    return
            if rows:
                last = loop.time()
                continue
            if not every and self.result is not None:  # events() of this run saw its end meanwhile
                return
            if self._quiet is not None and loop.time() - last >= QUIET_S:
                last = loop.time()
                ended = await self._quiet()
                if ended is not None:
                    self.result = ended
                    yield ended
                    return
            await asyncio.sleep(POLL_S)

    def cancel(self, reason: str = "cancelled") -> None:
        """A follower never cancels the run it follows (``RunDelivery`` only cancels runs it started)."""

    async def wait(self) -> RunFinished:
        """The run's end, reading the log on from the furthest row any reader of this run got to."""
        if self.result is None:
            async for _ in self._tail(self._seq, every=False):
                pass
        assert self.result is not None
        return self.result


def find_job(run_id: str) -> Callable[[Any], tuple[str, str, float] | None]:
    """A read: (session id, requester, start) of ``run_id`` when its events are in the log, else None."""
    def job(conn: Any) -> tuple[str, str, float] | None:
        rows = conn.execute("SELECT r.session_id, r.requester, r.started_at FROM runs r WHERE r.id = ? AND EXISTS"
                            " (SELECT 1 FROM run_event_log l WHERE l.run_id = r.id)", (run_id,)).fetchall()
        if rows:
            return tuple(rows[0])
        # Not one event yet: a run that started a moment ago is still followable while its lease lives.
        rows = conn.execute("SELECT r.session_id, r.requester, r.started_at FROM runs r"
                            " JOIN session_leases s ON s.run_id = r.id"
                            " WHERE r.id = ? AND r.outcome IS NULL", (run_id,)).fetchall()
        return tuple(rows[0]) if rows else None

    return job


def prune_job(now: float) -> Callable[[Any], int]:
    """Delete the logs of runs that finished more than KEEP_FINISHED_S ago; how many rows went."""
    def job(conn: Any) -> int:
        conn.execute("DELETE FROM run_event_log WHERE run_id IN (SELECT run_id FROM run_event_log"
                     " WHERE kind = 'run.finished' AND at < ?)", (now - KEEP_FINISHED_S,))
        return conn.changes()

    return job
