"""Several servers over one store: who this process is, and whether others share its store."""

from bmo.cluster.identity import store_is_shared, worker_id

__all__ = ["store_is_shared", "worker_id"]
