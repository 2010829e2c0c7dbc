"""Posture sections ``store_writer`` and ``records``: the two writer threads, their queues and what a full disk cost."""

from __future__ import annotations

from typing import Any


def store_posture(host: Any) -> dict:
    """The store writer: alive or not, queue depth against its bound, failures, and the degraded flag."""
    db = host.db
    return {
        "writer": "running" if db.writer_alive else "stopped",
        "degraded": db.failing is not None or not db.writer_alive,
        "disk_full": db.failing is not None and db.failing.status == 507,
        "queue_depth": db.queue_depth,
        "max_queue": db.max_pending,
        "transactions": db.transactions,
        "jobs_run": db.jobs_run,
        "jobs_failed": db.jobs_failed,
        "jobs_refused": db.refused,
        "last_error": db.last_error,
        "last_error_at": db.last_error_at,
    }


def records_posture(host: Any) -> dict:
    """The records writer: written, dropped, last error, queue depth."""
    return host.records.status()
