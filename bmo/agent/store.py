"""The agent core's tables and every read and write of them, through ``host.db``.

Durable sessions and their message history (BMO's own tool calls and results included),
runs and their steps, permission decisions, and an operation audit of who did what.
Ephemeral sessions never come here (see ``Coordinator.create_session``); their runs,
decisions and audit entries do.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec

from bmo.agent import history as hist
from bmo.agent import summaries
from bmo.agent.messages import ChatMessage
from bmo.cluster import schema as cluster_schema
from bmo.store import Batch, Table

MIGRATION_OWNER = "agent"

MIGRATIONS = [
    (1, """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT 'native',
    ephemeral INTEGER NOT NULL DEFAULT 0,
    parent_run_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE session_messages (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    message TEXT NOT NULL,
    run_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    model TEXT NOT NULL,
    origin TEXT NOT NULL,
    requester TEXT NOT NULL DEFAULT '',
    permission_mode TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    finish_reason TEXT,
    steps INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_status INTEGER,
    cancel_reason TEXT
);
CREATE INDEX runs_session ON runs(session_id, started_at);
CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    finish_reason TEXT,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE permission_decisions (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_class TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    arguments_digest TEXT NOT NULL,
    decision TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    requester TEXT NOT NULL DEFAULT '',
    requested_at REAL NOT NULL,
    decided_at REAL NOT NULL
);
CREATE INDEX permission_decisions_session ON permission_decisions(session_id, tool, decision);
CREATE TABLE operation_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    actor TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    session_id TEXT,
    run_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX operation_audit_session ON operation_audit(session_id, time);
"""),
    # A sub-agent's session lives in memory only: its run row keeps the link to the parent run.
    (2, "ALTER TABLE runs ADD COLUMN parent_run_id TEXT;"),
    # What an "always" decision approves: a JSON list of target globs (per tool and target, not per tool).
    (3, "ALTER TABLE permission_decisions ADD COLUMN pattern TEXT NOT NULL DEFAULT '';"),
    # Start-up crash recovery finds unfinished runs, and retention old rows, without a table scan.
    (4, """
CREATE INDEX runs_unfinished ON runs(id) WHERE outcome IS NULL;
CREATE INDEX runs_started ON runs(started_at);
CREATE INDEX sessions_updated ON sessions(updated_at);
CREATE INDEX operation_audit_time ON operation_audit(time);
CREATE INDEX permission_decisions_decided ON permission_decisions(decided_at);
"""),
    *hist.MIGRATIONS,  # 5: forks (bmo.agent.history)
    *cluster_schema.MIGRATIONS,  # 6 and 10: session leases, the run event log, permission challenges (bmo.cluster)
    *summaries.MIGRATIONS,  # 8: compaction summaries (bmo.agent.summaries)
    # Session listings (newest first, one owner's under a trusted proxy) read an index, not the whole table.
    (9, """
CREATE INDEX sessions_owner_created ON sessions(created_by, created_at, id) WHERE created_by <> '';
CREATE INDEX sessions_created ON sessions(created_at, id);
"""),
]

RUN_COLUMNS = ("id", "session_id", "model", "origin", "requester", "permission_mode", "started_at", "parent_run_id")
RUN_END_COLUMNS = ("finished_at", "outcome", "finish_reason", "steps", "prompt_tokens", "completion_tokens", "error",
                   "error_status", "cancel_reason")
STEP_COLUMNS = ("run_id", "step", "kind", "model", "started_at", "finished_at", "finish_reason", "tool_calls",
                "prompt_tokens", "completion_tokens", "error")
MESSAGE_COLUMNS = ("session_id", "seq", "role", "message", "run_id", "created_at")

RUNS = Table("runs", RUN_COLUMNS + RUN_END_COLUMNS)
STEPS = Table("run_steps", STEP_COLUMNS)
MESSAGES = Table("session_messages", MESSAGE_COLUMNS)
INTERRUPTED_MESSAGES = Table("session_messages", MESSAGE_COLUMNS + ("interrupted",))


class AgentStore:
    """Async persistence for the agent core; every write goes through the host's one writer."""

    def __init__(self, db: Any):
        self.db = db

    # -- sessions ------------------------------------------------------------------
    async def insert_session(self, row: dict) -> bool:
        """Insert a session row; False when one with that id exists (two first requests raced: one wins)."""
        def job(conn) -> bool:
            conn.execute(
                "INSERT INTO sessions (id, model, created_by, origin, ephemeral, parent_run_id, created_at, updated_at)"
                " VALUES (:id, :model, :created_by, :origin, :ephemeral, :parent_run_id, :created_at, :updated_at)"
                " ON CONFLICT(id) DO NOTHING", row)
            return conn.changes() > 0

        return await self.db.run_write(job)

    async def session_row(self, session_id: str) -> dict | None:
        return await self.db.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))

    async def session_rows(self, *, limit: int, before: tuple[float, str] | None, include_ephemeral: bool,
                           created_by: str | None = None) -> list[dict]:
        """Newest first; ``before`` is the (created_at, id) of the last session of the previous page."""
        where = ["1=1"] if include_ephemeral else ["ephemeral = 0"]
        params: list[Any] = []
        if created_by is not None:
            # The owner index holds named owners only; the term lets both engines' planners use it.
            where.append("created_by = ? AND created_by <> ''" if created_by else "created_by = ?")
            params.append(created_by)
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(before)
        params.append(limit)
        return await self.db.fetchall(
            f"SELECT * FROM sessions WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?", tuple(params)
        )

    async def delete_session(self, session_id: str, *, guard: Any = None) -> bool:
        """Delete the session and its history; ``guard`` (a job, e.g. "no live lease") runs first, in the same write."""
        def job(conn) -> bool:
            if guard is not None:
                guard(conn)
            conn.execute("DELETE FROM run_steps WHERE run_id IN (SELECT id FROM runs WHERE session_id = ?)", (session_id,))
            conn.execute("DELETE FROM runs WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM session_messages WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM permission_decisions WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM session_summaries WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            return conn.changes() > 0

        return await self.db.run_write(job)

    # -- messages ------------------------------------------------------------------
    async def append_messages(self, session_id: str, messages: list[ChatMessage], run_id: str | None, *,
                              interrupted: bool = False) -> None:
        if not messages:
            return
        job = _append_job(session_id, messages, run_id, interrupted=interrupted)
        await self.db.run_write(job)

    async def messages(self, session_id: str) -> list[ChatMessage]:
        """The active history (messages a fork set aside are not in it)."""
        rows = await self.db.fetchall(
            "SELECT message FROM session_messages WHERE session_id = ? AND set_aside IS NULL ORDER BY seq", (session_id,)
        )
        return [msgspec.json.decode(r["message"], type=ChatMessage) for r in rows]

    async def history(self, session_id: str) -> hist.History:
        """The active history with seqs and run ids, and the version it was read at (one read per turn)."""
        return await self.db.run_read(lambda conn: hist.read_history(conn, session_id))

    async def branches(self, session_id: str) -> list[dict]:
        return await self.db.run_read(lambda conn: hist.read_branches(conn, session_id))

    async def fork_session(self, session_id: str, fork: hist.Fork) -> dict:
        """Set aside the messages after ``fork.at_seq`` now (the native API's "continue from here")."""
        return await self.db.run_write(lambda conn: hist.fork(conn, session_id, fork, None))

    async def message_count(self, session_id: str) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) AS n FROM session_messages WHERE session_id = ?"
                                     " AND set_aside IS NULL", (session_id,))
        return int(row["n"]) if row else 0

    # -- runs and steps ------------------------------------------------------------
    async def begin_run(self, row: dict, messages: list[ChatMessage], *, version: tuple[int, int] | None = None,
                        fork: hist.Fork | None = None, claim: Any = None) -> dict | None:
        """The run's row, its fork and the messages it starts with, in one write; the fork's row, if any.

        With ``version`` (of the history the turn was planned on) a changed history raises HistoryChanged.
        ``claim`` (a job, e.g. the session's lease) runs first: when it raises, nothing is written.
        """
        insert = RUNS.insert(row, RUN_COLUMNS)
        session_id = row["session_id"]
        append = _append_job(session_id, messages, row["id"]) if messages else None

        def job(conn) -> dict | None:
            if claim is not None:
                claim(conn)
            if version is not None:
                hist.check_version(conn, session_id, version)
            forked = hist.fork(conn, session_id, fork, row["id"]) if fork is not None else None
            insert(conn)
            if append is not None:
                append(conn)
            return forked

        return await self.db.run_write(job)

    async def record_finished_run(self, row: dict) -> None:
        """The whole row of a run that was not written when it started (a run on an in-memory session)."""
        await self.db.run_write(RUNS.insert(row, RUN_COLUMNS + RUN_END_COLUMNS))

    async def finish_run(self, run_id: str, fields: dict, *, also: Any = None) -> None:
        """The run's end on its row; ``also`` (a job, e.g. the session's lease release) in the same write."""
        update = RUNS.update(run_id, fields, RUN_END_COLUMNS)
        if also is None:
            await self.db.run_write(update)
            return

        def job(conn) -> None:
            update(conn)
            also(conn)

        await self.db.run_write(job)

    async def run_rows(self, session_id: str, limit: int = 50) -> list[dict]:
        return await self.db.fetchall(
            "SELECT * FROM runs WHERE session_id = ? ORDER BY started_at DESC LIMIT ?", (session_id, limit)
        )

    async def run_row(self, run_id: str) -> dict | None:
        return await self.db.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))

    def record_step_soon(self, row: dict) -> asyncio.Future:
        """Queue a finished step's row; nobody needs to wait for it (the future reports a failure)."""
        return self.db.write_soon(STEPS.insert(row, STEP_COLUMNS))

    async def step_rows(self, run_id: str) -> list[dict]:
        return await self.db.fetchall("SELECT * FROM run_steps WHERE run_id = ? ORDER BY step", (run_id,))

    # -- permissions and audit -----------------------------------------------------
    async def insert_decision(self, row: dict) -> None:
        await self.db.write(
            "INSERT INTO permission_decisions (id, session_id, run_id, tool, tool_class, target, arguments_digest,"
            " decision, decided_by, requester, requested_at, decided_at, pattern) VALUES (:id, :session_id, :run_id,"
            " :tool, :tool_class, :target, :arguments_digest, :decision, :decided_by, :requester, :requested_at,"
            " :decided_at, :pattern)",
            {"pattern": "", **row},
        )

    async def always_patterns(self, session_id: str, tool: str) -> list[str]:
        """The target globs every "always" decision of the session approved for ``tool``."""
        rows = await self.db.fetchall(
            "SELECT pattern FROM permission_decisions WHERE session_id = ? AND tool = ? AND decision = 'always'",
            (session_id, tool),
        )
        patterns: list[str] = []
        for row in rows:
            try:
                patterns += [p for p in json.loads(row["pattern"] or "[]") if isinstance(p, str)]
            except ValueError:
                continue  # a row from before patterns approves nothing: the person is asked again
        return patterns

    async def decision_rows(self, session_id: str) -> list[dict]:
        return await self.db.fetchall(
            "SELECT * FROM permission_decisions WHERE session_id = ? ORDER BY decided_at", (session_id,)
        )

    async def audit(self, action: str, *, actor: str = "", session_id: str | None = None,
                    run_id: str | None = None, **detail: Any) -> None:
        await self.db.write(
            "INSERT INTO operation_audit (time, actor, action, session_id, run_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), actor, action, session_id, run_id, json.dumps(detail, default=str)),
        )

    async def audit_rows(self, session_id: str | None = None, action: str | None = None) -> list[dict]:
        where, params = [], []
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(f"SELECT * FROM operation_audit {clause} ORDER BY id", tuple(params))
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows


def _append_job(session_id: str, messages: list[ChatMessage], run_id: str | None, *, interrupted: bool = False):
    """A writer job appending ``messages`` after the session's last one (encoded now, on the loop)."""
    now = time.time()
    encoded = [(m.role, msgspec.json.encode(m).decode()) for m in messages]
    table = INTERRUPTED_MESSAGES if interrupted else MESSAGES
    extra = (1,) if interrupted else ()

    def job(conn) -> None:
        # Set-aside rows keep their seq, so the next seq counts them too.
        seq = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM session_messages WHERE session_id = ?", (session_id,)
        ).fetchall()[0][0]
        Batch(table.insert_values((session_id, seq + i, role, body, run_id, now, *extra))
              for i, (role, body) in enumerate(encoded, 1))(conn)
        conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))

    return job
