"""Pytest fixtures for BMO and plugin tests; import them in a conftest.py.

    from bmo.testing.fixtures import fake_upstream  # noqa: F401
"""

from __future__ import annotations

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
