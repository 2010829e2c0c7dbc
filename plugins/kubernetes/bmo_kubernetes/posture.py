"""The ``kubernetes`` posture section: which cluster, through which context, is it answering, what failed."""

from __future__ import annotations

from bmo_kubernetes.api import ClusterApi


def posture(api: ClusterApi) -> dict:
    stats = api.stats
    return {
        "enabled": True, "credentials": api.source or "not loaded yet (first tool call loads them)",
        "context": api.context, "server": api.server, "default_namespace": api.default_namespace(),
        "namespace_allow_list": list(api.options.namespaces),
        "reachable": stats.reachable, "last_ok_at": stats.last_ok_at,
        "inspections": stats.requests, "attempts": stats.attempts, "retries": stats.retries,
        "permanent_failures": stats.permanent_failures, "retries_exhausted": stats.exhausted,
        "failures_by_status": dict(stats.by_status), "last_error": stats.last_error,
        "last_error_at": stats.last_error_at,
    }
