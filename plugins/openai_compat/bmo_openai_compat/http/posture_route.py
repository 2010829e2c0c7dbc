"""``GET /v1/openai-compat/posture``: the live posture snapshot as JSON."""

from __future__ import annotations

import msgspec
from aiohttp import web

from bmo.server.app import get_host
from bmo_openai_compat.http.error_replies import disabled_error
from bmo_openai_compat.observe.posture import build_snapshot
from bmo_openai_compat.state import state_of


async def posture(request: web.Request) -> web.Response:
    """The live snapshot; a read of the ledger, not a compat request of its own."""
    host = get_host(request)
    if not state_of(host).options.enabled:
        raise disabled_error()
    return web.Response(body=msgspec.json.encode(await build_snapshot(host)), content_type="application/json")
