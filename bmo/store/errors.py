"""What a store failure means to its caller, on either backend."""

from __future__ import annotations


class StoreError(Exception):
    """A write or read the store could not do; the caller decides what it means.

    ``status`` and ``code`` are what an HTTP route answers when the failure reaches a client.
    """

    status = 503
    code = "store_unavailable"


class StoreFull(StoreError):
    """The disk under the store is full (SQLITE_FULL / ENOSPC, PostgreSQL's 53100): nothing new can be written."""

    status = 507
    code = "disk_full"
