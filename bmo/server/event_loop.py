"""Which event loop ``bmo serve`` runs on: uvloop when available, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner``; None means asyncio's default loop.

    ``"uvloop"`` insists (a clear error when it is missing), ``"auto"`` takes it when importable.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError(
                "[options.http_server] event_loop = \"uvloop\" but uvloop is not installed; "
                "pip install uvloop, or set event_loop = \"auto\""
            ) from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
