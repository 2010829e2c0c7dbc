"""Fixtures shared by the whole test suite."""

from bmo.testing.fixtures import fake_upstream  # noqa: F401
