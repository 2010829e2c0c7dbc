"""The start of a read route's request (models, ledger routes): the disabled check, its CompatRequest, its JSON reply."""

from __future__ import annotations

from aiohttp import web

from bmo.server.app import get_host
from bmo_openai_compat.http.error_replies import disabled_error, identity_headers, requester_of
from bmo_openai_compat.observe.compat_request import CompatRequest
from bmo_openai_compat.state import state_of


def begin_read(request: web.Request, route: str) -> CompatRequest:
    host = get_host(request)
    state = state_of(host)
    if not state.options.enabled:
        raise disabled_error()
    rt = CompatRequest(host, state.ledger, state.options, request, route)
    rt.set(requester=requester_of(host, request))
    return rt


def json_reply(rt: CompatRequest, body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json", headers=identity_headers(rt))
