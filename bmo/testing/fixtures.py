"""Pytest fixtures for BMO and plugin tests; import them in a conftest.py.

    from bmo.testing.fixtures import fake_upstream  # noqa: F401
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from bmo.testing.fake_upstream import FakeUpstream


@pytest_asyncio.fixture
async def fake_upstream():
    """A running :class:`FakeUpstream` serving model ``fake-model``; stopped after the test."""
    async with FakeUpstream() as up:
        yield up


def provider_toml(up: FakeUpstream, name: str = "fake", *, models: list[str] | None = None, extra: str = "") -> str:
    """A ``[providers.NAME]`` table pointing BMO at ``up`` (``models=None`` lists them all, ``[]`` discovers)."""
    listed = up.models if models is None else models
    quoted = ", ".join(f'"{m}"' for m in listed)
    return f'[providers.{name}]\nkind = "openai"\nbase_url = "{up.base_url}"\nmodels = [{quoted}]\n{extra}'


def _postgres_unavailable(reason: str) -> None:
    """Skip with ``reason``; under ``CI=true`` (where setup installs PostgreSQL) fail instead."""
    import os

    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throw-away :class:`~bmo.testing.postgres.PostgresCluster` for the whole session (skips without PostgreSQL)."""
    from bmo.testing.postgres import PostgresCluster, PostgresUnavailable

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_unavailable("psycopg is not installed (pip install 'bmo[postgresql]')")
    try:
        cluster = PostgresCluster()
        cluster.init()
        cluster.start()
    except PostgresUnavailable as exc:
        _postgres_unavailable(str(exc))
    yield cluster
    cluster.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request) -> str:
    """Which store backend the test runs on: one behaviour, one test, both backends."""
    return request.param


@pytest.fixture
def store_url(request, store_backend) -> str:
    """``[store] url`` for ``store_backend``: empty (SQLite in the data dir) or a fresh PostgreSQL store (own schema)."""
    if store_backend == "sqlite":
        return ""
    return request.getfixturevalue("postgres_cluster").new_store_url()


def sqlite_only(reason: str):
    """Run a test that takes ``store_backend`` on SQLite alone; ``reason`` says what is SQLite's own in it."""
    del reason  # documentation at the call site
    return pytest.mark.parametrize("store_backend", ["sqlite"])
