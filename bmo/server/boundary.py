"""The browser boundary: Host allow-list, Origin check and CORS, JSON-only bodies read in bounded time and depth.

A web page the user visits can make their browser send requests to BMO on loopback. These checks
keep such a page from driving BMO: the ``Host`` header must name BMO (a DNS-rebinding page sends
its own name); an ``Origin`` must be configured (a foreign page sends one on every CORS request
and POST), and without one ``Sec-Fetch-Site`` must not say another site made it (``<img>``,
no-cors fetches); a body must be ``application/json`` (the only types a page may send without a
CORS preflight are form and text types). docs/serving.md has the threat model.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from itertools import accumulate

from aiohttp import web

from bmo.server.errors import ApiError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Routes that answer anyone on any name: a liveness probe (Kubernetes sends the pod IP as Host).
EXEMPT_PATHS = frozenset({"/healthz"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_TYPE = "application/json"
# Sec-Fetch-Site values of a request another site's page made ("same-site" ignores the port: localhost:3000 too).
CROSS_SITE = frozenset({"cross-site", "same-site"})
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_REQUEST_HEADERS = "Authorization, Content-Type, X-BMO-Session-Id, X-BMO-Resume"
CORS_EXPOSED_HEADERS = "X-Request-Id, X-BMO-Session-Id, X-BMO-Run-Id"
CORS_MAX_AGE_S = "600"
# request[CORS_ORIGIN]: the allowed Origin this request came with; its response carries the CORS headers.
CORS_ORIGIN = "bmo_cors_origin"

# A JSON string (escapes included): brackets inside one do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Openers become +1 and closers -1 once read as signed bytes, so a running sum is the depth.
_BRACKET_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower-case: ``[::1]:9000`` → ``::1``, ``Example.com.:80`` → ``example.com``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit():
        header = name
    return header.rstrip(".")


def json_depth(body: bytes, limit: int) -> int:
    """The nesting depth of a JSON text, or 0 when it cannot exceed ``limit`` (checked without parsing)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return 0  # the common case: two C-speed counts and nothing else
    if b'\\"' in body:
        body = _JSON_STRING.sub(b"", body)
    elif b'"' in body:
        # No escaped quote anywhere: every quote opens or closes a string, and a split finds them 4x faster.
        body = b"".join(body.split(b'"')[::2])
    signs = body.translate(_BRACKET_SIGNS, _NOT_BRACKETS)
    return max(accumulate(memoryview(signs).cast("b")), default=0)


@dataclass(frozen=True)
class Boundary:
    """What the boundary middlewares accept, decided once from ``[options.http_server]`` and the bind address."""

    hosts: frozenset[str]
    any_host: bool
    origins: frozenset[str]
    max_json_depth: int
    body_read_timeout_s: float
    max_body_bytes: int

    @classmethod
    def from_options(cls, options, bind_host: str) -> "Boundary":
        configured = {host_name(h) for h in options.allowed_hosts if h.strip()}
        return cls(
            hosts=frozenset(LOOPBACK_NAMES | {host_name(bind_host)} | (configured - {"*"})),
            any_host="*" in configured,
            origins=frozenset(o.strip().rstrip("/").lower() for o in options.allowed_origins if o.strip()),
            max_json_depth=options.max_json_depth,
            body_read_timeout_s=options.body_read_timeout_s,
            max_body_bytes=options.max_body_bytes,
        )

    def host_allowed(self, header: str | None) -> bool:
        # No Host at all is an HTTP/1.0 client, never a browser.
        return header is None or self.any_host or host_name(header) in self.hosts


def _refused(host_key: web.AppKey, request: web.Request, error: ApiError) -> web.Response:
    """The refusal answer, and a record of it: a route never saw the request, so no route records it."""
    request.app[host_key].emit("bmo.request_refused", "info", method=request.method, path=request.path,
                               status=error.status, code=error.body.code, remote=request.remote)
    return error.response()


def make_origin_middleware(boundary: Boundary, host_key: web.AppKey):
    """Host and Origin checks and CORS preflights, before authentication (a preflight carries no token)."""

    @web.middleware
    async def origin_middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        headers = request.headers
        host = headers.get("Host")
        if not boundary.host_allowed(host):
            return _refused(host_key, request, ApiError(
                403, f"Host {host[:100]!r} is not a name this server answers to (a page using DNS rebinding sends "
                     "its own). Add it to [options.http_server] allowed_hosts if clients really use it.",
                param="Host", code="host_not_allowed",
            ))
        origin = headers.get("Origin")
        if origin is None:
            # A page's <img>/<script>/no-cors GET carries no Origin, but browsers still say where it came from.
            if headers.get("Sec-Fetch-Site") in CROSS_SITE:
                return _refused(host_key, request, ApiError(
                    403, "A request a web page made the browser send (Sec-Fetch-Site: cross-site) is refused; "
                         "call BMO from a page only through an origin listed in [options.http_server] allowed_origins.",
                    param="Sec-Fetch-Site", code="origin_not_allowed",
                ))
            return await handler(request)
        if origin.rstrip("/").lower() not in boundary.origins:
            return _refused(host_key, request, ApiError(
                403, f"Requests from the browser origin {origin[:100]!r} are refused. To let a browser-based client "
                     "call BMO on purpose, add its origin to [options.http_server] allowed_origins.",
                param="Origin", code="origin_not_allowed",
            ))
        request[CORS_ORIGIN] = origin
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
                "Access-Control-Max-Age": CORS_MAX_AGE_S,
                "Vary": "Origin",
            })
        return await handler(request)

    return origin_middleware


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer to an allowed origin (streams and errors too) names it."""
    origin = request.get(CORS_ORIGIN)
    if origin is None:
        return
    response.headers.setdefault("Access-Control-Allow-Origin", origin)
    response.headers.setdefault("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"


def make_body_middleware(boundary: Boundary, host_key: web.AppKey):
    """Every POST/PUT/PATCH body under /v1 is JSON, arrives within the read timeout, and nests at most so deep."""

    @web.middleware
    async def body_middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.method not in BODY_METHODS or not request.body_exists or not request.path.startswith("/v1/"):
            return await handler(request)
        if request.content_type != JSON_TYPE:
            sent = request.headers.get("Content-Type", "")
            return _refused(host_key, request, ApiError(
                415, f"Content-Type {sent[:100]!r} is not accepted; send the body as JSON with "
                     "'Content-Type: application/json'.", param="Content-Type", code="unsupported_media_type",
            ))
        if (request.content_length or 0) > boundary.max_body_bytes:
            return await handler(request)  # the route's own read refuses it with a 413 it records
        try:
            async with asyncio.timeout(boundary.body_read_timeout_s):
                body = await request.read()  # cached: the handler's own read() gets these bytes
        except TimeoutError:
            response = _refused(host_key, request, ApiError(
                408, f"The request body did not arrive within {boundary.body_read_timeout_s:g}s "
                     "([options.http_server] body_read_timeout_s); send the whole body, matching Content-Length.",
                code="request_timeout", type="invalid_request_error",
            ))
            response.force_close()  # the rest of the body may still come: the connection cannot be reused
            return response
        depth = json_depth(body, boundary.max_json_depth)
        if depth > boundary.max_json_depth:
            return _refused(host_key, request, ApiError(
                400, f"The JSON body nests {depth} levels deep; the limit is {boundary.max_json_depth} "
                     "([options.http_server] max_json_depth).", code="json_too_deep",
            ))
        return await handler(request)

    return body_middleware
