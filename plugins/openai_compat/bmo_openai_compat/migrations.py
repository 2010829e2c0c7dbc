"""The run ledger's tables, applied through the host's migrations."""

from __future__ import annotations

OWNER = "openai_compat"

V1 = """
CREATE TABLE openai_compat_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    route TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'chat',
    status TEXT NOT NULL DEFAULT 'running',
    outcome TEXT,
    http_status INTEGER,
    session_id TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    stream INTEGER NOT NULL DEFAULT 0,
    is_session_reuse INTEGER NOT NULL DEFAULT 0,
    client_ua TEXT NOT NULL DEFAULT '',
    requester TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    finished_at TEXT,
    elapsed_ms INTEGER,
    error TEXT
);
CREATE INDEX openai_compat_runs_route ON openai_compat_runs (route, id);
CREATE INDEX openai_compat_runs_outcome ON openai_compat_runs (outcome, id);
CREATE INDEX openai_compat_runs_session ON openai_compat_runs (session_id, id);
CREATE INDEX openai_compat_runs_ua ON openai_compat_runs (client_ua);
CREATE TABLE openai_compat_run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    elapsed_ms INTEGER NOT NULL,
    terminal INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    UNIQUE (request_id, seq)
);
CREATE INDEX openai_compat_run_events_terminal ON openai_compat_run_events (terminal, id);
"""

# The Responses API's stored responses: which session and run each response id continues.
V2 = """
CREATE TABLE openai_compat_responses (
    response_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '',
    previous_response_id TEXT,
    status TEXT NOT NULL,
    history_len INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    input_items TEXT NOT NULL DEFAULT '[]',
    response TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX openai_compat_responses_session ON openai_compat_responses (session_id, created_at);
"""

# Start-up crash recovery finds rows left running, and retention old rows, without a table scan.
V3 = """
CREATE INDEX openai_compat_runs_running ON openai_compat_runs (id) WHERE status = 'running';
CREATE INDEX openai_compat_runs_started ON openai_compat_runs (started_at);
CREATE INDEX openai_compat_responses_open ON openai_compat_responses (response_id) WHERE status = 'in_progress';
"""

# Version 4 (issue 15): who a failure belongs to: client | upstream | server ("" when none).
V4 = """
ALTER TABLE openai_compat_runs ADD COLUMN error_class TEXT NOT NULL DEFAULT '';
"""

# Version 5: the runs listing filtered to one requester (ownership) walks that requester's rows, newest
# first, not the whole ledger; rows without a forwarded requester stay out of it, so the single-user
# default pays no index write. Retention of stored responses finds old ones by age without a scan.
V5 = """
CREATE INDEX openai_compat_runs_requester ON openai_compat_runs (requester, id) WHERE requester <> '';
CREATE INDEX openai_compat_responses_created ON openai_compat_responses (created_at);
"""

# Version 6 (shared stores): the server process that wrote a row, so a dead one's rows can be closed by a live
# peer (bmo.cluster.liveness). NULL when the store is not shared: start-up recovery closes those.
V6 = """
ALTER TABLE openai_compat_runs ADD COLUMN holder TEXT;
ALTER TABLE openai_compat_runs ADD COLUMN holder_host TEXT;
"""

# Version 7 (shared stores): an Idempotency-Key's claim, so a retry on another server joins the first attempt's
# run (bmo_openai_compat.shared_keys). Only keyed requests on a shared store write it.
V7 = """
CREATE TABLE openai_compat_idempotency_keys (
    key_hash TEXT PRIMARY KEY,
    intent TEXT NOT NULL,
    request_id TEXT NOT NULL,
    session_id TEXT,
    holder TEXT NOT NULL,
    holder_host TEXT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX openai_compat_idempotency_keys_expires ON openai_compat_idempotency_keys (expires_at);
"""

MIGRATIONS = ((1, V1), (2, V2), (3, V3), (4, V4), (5, V5), (6, V6), (7, V7))
