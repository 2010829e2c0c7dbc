"""The tables that let several servers share sessions: leases and the run event log (agent migration 6),
pending permission challenges (agent migration 10).

Types both SQLite and PostgreSQL accept, so one migration text serves both engines.
"""

from __future__ import annotations

MIGRATIONS = [
    # 6: a busy session is a lease row its holder renews; a running run's events are logged for followers elsewhere.
    (6, """
CREATE TABLE session_leases (
    session_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    cancel_requested TEXT
);
CREATE INDEX session_leases_run ON session_leases (run_id);
CREATE INDEX session_leases_expires ON session_leases (expires_at);
CREATE TABLE run_event_log (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX run_event_log_finished ON run_event_log (at) WHERE kind = 'run.finished';
"""),
    # 10: a permission challenge waiting on the server running its run, so a native API elsewhere can answer it.
    (10, """
CREATE TABLE permission_challenges (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    challenge TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    decision TEXT,
    decided_by TEXT
);
CREATE INDEX permission_challenges_session ON permission_challenges (session_id);
"""),
]
