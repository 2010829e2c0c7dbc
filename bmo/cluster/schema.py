"""The tables that let several servers share sessions: leases and the run event log (agent migration 6).

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
]
