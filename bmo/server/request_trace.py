"""One OpenTelemetry server span and one ``bmo.http_request`` record per HTTP request.

The span is made current for the handler, so spans that plugins open (model calls, tool
calls) nest under it; a W3C ``traceparent`` sent by the client becomes its parent.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bmo.server.auth import requester_label

# Liveness probes would drown everything else in the log.
QUIET_PATHS = frozenset({"/healthz"})


def route_of(request: web.Request) -> str:
    """The route template (``/v1/openai-compat/runs/{id}/events``), or "" for an unmatched path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def span_name(method: str, route: str) -> str:
    return f"HTTP {method} {route}" if route else f"HTTP {method}"


def make_request_trace_middleware(host_key: web.AppKey):
    """The outermost middleware: it sees the final status, including 401s and error envelopes."""

    @web.middleware
    async def request_trace_middleware(request: web.Request, handler) -> web.StreamResponse:
        host = request.app[host_key]
        route = route_of(request)
        parent = propagate.extract(request.headers)
        attributes = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
            "server.address": request.host.rsplit(":", 1)[0] if request.host else "",
            "client.address": request.remote or "",
            "user_agent.original": request.headers.get("User-Agent", ""),
        }
        if route:
            attributes["http.route"] = route
        started = time.monotonic()
        status = 500
        with host.tracer.start_as_current_span(
            span_name(request.method, route), context=parent, kind=SpanKind.SERVER,
            attributes=attributes, record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = 499  # the client went away (nginx's code for it)
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                requester = requester_label(request.get("requester"))
                if requester:
                    span.set_attribute("enduser.id", requester)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                if request.path not in QUIET_PATHS:
                    context = span.get_span_context()
                    host.emit(
                        "bmo.http_request", "debug", method=request.method, path=request.path,
                        http_route=route, status=status,
                        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                        peer=request.remote or "", client_ua=request.headers.get("User-Agent", ""),
                        requester=requester,
                        trace_id=trace.format_trace_id(context.trace_id) if context.is_valid else "",
                    )

    return request_trace_middleware
