"""The run ledger: one row per compat request and its event timeline, in the host's SQLite.

Writes are grouped: every write waiting while one is in flight goes into the next single
database job. A write that fails (disk full, locked, a trigger refusing it) never reaches the
request: the statements are kept, in order, and replayed in front of the next write, the
sticky ``degraded`` flag is set, and the first write that lands again clears it.

``BMO_TEST_NO_LEDGER=1`` (read at startup, for measuring what the ledger costs) turns every
write into a no-op that reports success; reads still answer, from tables that stay empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from bmo.store import Batch, Statement, Table
from bmo_openai_compat.observe.ledger_counts import LedgerCounts

# Statements kept for replay while the store refuses writes; the oldest go first past this.
MAX_PENDING = 5000
# Benchmark switch: "1" turns ledger writes off (records, spans and answers are unchanged).
NO_LEDGER_ENV = "BMO_TEST_NO_LEDGER"

RUN_COLUMNS = (
    "request_id", "route", "kind", "status", "outcome", "http_status", "session_id", "run_id", "model",
    "stream", "is_session_reuse", "client_ua", "requester", "started_at", "finished_at", "elapsed_ms", "error",
    "error_class",
)
# Set on shared stores only: which process wrote the row, so a live peer can close it if that one dies.
HOLDER_COLUMNS = ("holder", "holder_host")
EVENT_COLUMNS = ("request_id", "seq", "event", "at", "elapsed_ms", "terminal", "outcome", "detail")
RUNS = Table("openai_compat_runs", RUN_COLUMNS, key="request_id")
HELD_RUNS = Table("openai_compat_runs", RUN_COLUMNS + HOLDER_COLUMNS, key="request_id")
EVENTS = Table("openai_compat_run_events", EVENT_COLUMNS)


class Ledger:
    """Writes and reads of ``openai_compat_runs`` / ``openai_compat_run_events``."""

    def __init__(self, db, emit: Callable[..., Any], *, writes: bool = True, holder: dict[str, str] | None = None):
        self.db = db
        self.holder = holder  # HOLDER_COLUMNS' values for each new row; None unless the store is shared
        self._emit = emit
        self.writes = writes  # False only under BMO_TEST_NO_LEDGER=1
        self.degraded = False
        self.failures = 0  # writes refused since the server started
        self.last_error = ""
        self.dropped = 0  # kept statements given up because MAX_PENDING was reached
        self._pending: list[Statement] = []
        self._queue: list[tuple[list[Statement], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self.counts = LedgerCounts()  # the posture's numbers, without counting whole tables each time

    # -- writes ----------------------------------------------------------------------
    def submit(self, statements: list[Statement]) -> asyncio.Future:
        """Queue ``statements`` behind every earlier write; the future says whether they landed (True/False)."""
        fut = asyncio.get_running_loop().create_future()
        if not self.writes:
            fut.set_result(True)
            return fut
        self._queue.append((statements, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return fut

    async def write(self, statements: list[Statement]) -> bool:
        """Persist ``statements`` in order; False (never an exception) when the store refused."""
        return await asyncio.shield(self.submit(statements))

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            # The kept statements leave _pending while in flight: what keep_for_replay adds meanwhile
            # stays there for the next write, and a write that landed is never sent again.
            statements, self._pending = self._pending + [s for stmts, _ in batch for s in stmts], []
            ok = False
            try:
                try:
                    await self.db.run_write(Batch(statements))
                    ok, error = True, ""
                except Exception as exc:  # noqa: BLE001 - StoreError or anything else: degrade, never reach the request
                    ok, error = False, f"{type(exc).__name__}: {exc}"
                self._settle(ok, error, statements)
            finally:  # every future is settled, whatever failed: a request must not wait forever
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(ok)

    def _settle(self, ok: bool, error: str, statements: list[Statement]) -> None:
        if ok:
            self.counts.wrote(statements)
            if self.degraded:
                self.degraded = False
                self._emit("openai_compat.ledger_recovered", "info", failures=self.failures)
            return
        self.failures += 1
        self.last_error = error
        statements += self._pending  # kept while this write was in flight: they come after it
        overflow = len(statements) - MAX_PENDING
        if overflow > 0:
            self.dropped += overflow
            statements = statements[overflow:]
        self._pending = statements
        if not self.degraded:
            self.degraded = True
            self._emit("openai_compat.ledger_degraded", "warn", outcome="persist_failed", error=error)

    def keep_for_replay(self, statements: list[Statement]) -> None:
        """Queue statements (each a :class:`Statement`) behind the ones already waiting, without trying the store now."""
        if self.writes:
            self._pending.extend(statements)

    async def drain(self) -> None:
        """Wait for writes in flight (used at shutdown and by tests)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    # -- statements ------------------------------------------------------------------
    @staticmethod
    def insert_run(row: dict[str, Any]) -> Statement:
        return (HELD_RUNS if "holder" in row else RUNS).insert(row)

    @staticmethod
    def update_run(request_id: str, fields: dict[str, Any]) -> Statement:
        return RUNS.update(request_id, fields)

    @staticmethod
    def insert_event(
        request_id: str, seq: int, event: str, at: str, elapsed_ms: int, detail: dict[str, Any],
        *, terminal: bool = False, outcome: str | None = None,
    ) -> Statement:
        return EVENTS.insert_values((request_id, seq, event, at, elapsed_ms, int(terminal), outcome,
                                     msgspec.json.encode(detail).decode()))

    # -- reads -----------------------------------------------------------------------
    async def list_runs(
        self, *, limit: int, after: str | None = None, route: str | None = None,
        outcome: str | None = None, session_id: str | None = None, exclude: str | None = None,
        requester: str | None = None,
    ) -> tuple[list[dict], bool]:
        """Newest first; ``after`` is the ``request_id`` the previous page ended with; ``requester`` limits to one's rows."""
        where, params = [], []
        if exclude is not None:  # the list request's own row, still running
            where.append("request_id != ?")
            params.append(exclude)
        if after is not None:
            where.append("id < (SELECT id FROM openai_compat_runs WHERE request_id = ?)")
            params.append(after)
        for column, value in (("route", route), ("outcome", outcome), ("session_id", session_id),
                              ("requester", requester)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if requester:  # the requester index holds named requesters only; this term lets planners use it
            where.append("requester <> ''")
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM openai_compat_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self.db.fetchall(sql, (*params, limit + 1))
        return [_run_row(r) for r in rows[:limit]], len(rows) > limit

    async def get_run(self, request_id: str) -> dict | None:
        row = await self.db.fetchone(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM openai_compat_runs WHERE request_id = ?", (request_id,)
        )
        return _run_row(row) if row else None

    async def has_run(self, request_id: str) -> bool:
        row = await self.db.fetchone("SELECT 1 AS hit FROM openai_compat_runs WHERE request_id = ?", (request_id,))
        return row is not None

    async def events(self, request_id: str) -> list[dict]:
        rows = await self.db.fetchall(
            "SELECT seq, event, at, elapsed_ms, terminal, outcome, detail FROM openai_compat_run_events"
            " WHERE request_id = ? ORDER BY seq",
            (request_id,),
        )
        return [_event_row(r) for r in rows]

    async def seed_counts(self) -> None:
        """Seed the running counters from the tables (once, at start-up)."""
        await self.counts.seed(self.db)

    async def summary(self) -> dict[str, Any]:
        """Ledger size, per-route and per-kind (chat/task) counts, top-5 User-Agents and the last 5 chat outcomes.

        From running counters (seeded once), not from counting the tables.
        """
        if not self.counts.seeded:
            await self.seed_counts()
        return self.counts.summary()


def _run_row(row: dict) -> dict:
    row = dict(row)
    row["stream"] = bool(row["stream"])
    row["is_session_reuse"] = bool(row["is_session_reuse"])
    return row


def _event_row(row: dict) -> dict:
    row = dict(row)
    row["terminal"] = bool(row["terminal"])
    row["detail"] = msgspec.json.decode(row["detail"]) if row["detail"] else {}
    return row
