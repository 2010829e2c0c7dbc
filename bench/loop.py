"""Event loop choice for the bench's own processes (upstream, load generator, OTLP sink)."""

from __future__ import annotations

import asyncio


def run_loop(coro) -> None:
    """uvloop when the bench venv has it (the bench's own processes must stay cheap), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
