"""Fixtures shared by the whole test suite."""

from bmo.testing.fixtures import fake_upstream  # noqa: F401
from bmo.testing.fixtures import postgres_cluster, store_backend, store_url  # noqa: F401
