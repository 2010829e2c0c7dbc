"""This process's name among the servers of one store, and whether there are others.

`bmo serve --workers N` starts each worker with ``BMO_WORKER_ID`` (``w1`` …) and
``BMO_STORE_SHARED=1``; a PostgreSQL store is shared by nature, since any host may connect to it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

WORKER_ID_ENV = "BMO_WORKER_ID"
STORE_SHARED_ENV = "BMO_STORE_SHARED"


def worker_id() -> str:
    """The supervisor's name for this worker, else ``<hostname>:<pid>`` (unique among live servers)."""
    return os.environ.get(WORKER_ID_ENV) or f"{socket.gethostname()}:{os.getpid()}"


def store_is_shared(config: Any) -> bool:
    """True when other server processes may use this store at the same time (then state lives in the store)."""
    if os.environ.get(STORE_SHARED_ENV, "").lower() in ("1", "true", "yes"):
        return True
    store = config.section("store")
    return bool(store.shared or store.url.startswith(("postgresql:", "postgres:")))
