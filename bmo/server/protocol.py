"""The connection layer: malformed HTTP answered in the error envelope, and the server's connection limits.

aiohttp answers a request it cannot parse itself (``RequestHandler.handle_error``), before any
middleware runs, in ``text/plain`` echoing the offending bytes; aiohttp has no hook for it
(aio-libs/aiohttp#3287). :class:`EnvelopeRunner` swaps in a connection handler whose only
change is that answer.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import http_exceptions, web, web_protocol

from bmo.server.errors import ApiError

LINGER_S = 2.0

# What went wrong, in words a client can act on; never the bytes it sent (they may be anything).
_PROBLEMS = (
    (http_exceptions.LineTooLong, "the request line or a header is longer than the server accepts"),
    (http_exceptions.InvalidHeader, "a header name or value holds a character HTTP forbids"),
    (http_exceptions.BadHttpMethod, "the request method is not a valid HTTP method"),
    (http_exceptions.BadStatusLine, "the request line is not 'METHOD /path HTTP/1.1'"),
    (http_exceptions.InvalidURLError, "the request target is not a valid URL path"),
    (http_exceptions.TransferEncodingError, "the chunked body framing is invalid"),
    (http_exceptions.ContentLengthError, "the body does not match its Content-Length"),
)


def describe(exc: BaseException | None) -> str:
    for kind, problem in _PROBLEMS:
        if isinstance(exc, kind):
            return problem
    if exc is not None and "Transfer-Encoding" in str(exc) and "Content-Length" in str(exc):
        return "Content-Length and Transfer-Encoding are both set; send one of them"
    return "the request is not well-formed HTTP/1.1"


class EnvelopeRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler; its own error answers leave in the OpenAI envelope."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's version logs and refuses when a response already started; keep both, replace its body.
        super().handle_error(request, status, exc, message)
        if status == HTTPStatus.BAD_REQUEST:
            text = f"Malformed HTTP request: {describe(exc)}. The connection is closed."
        else:
            text = f"{status} {HTTPStatus(status).phrase}: the server could not answer this request."
        response = ApiError(status, text).response()
        response.force_close()
        return response


class _EnvelopeServer(web.Server):
    """A :class:`web.Server` whose connections use :class:`EnvelopeRequestHandler`."""

    def __call__(self) -> web_protocol.RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class EnvelopeRunner(web.AppRunner):
    """An ``AppRunner`` whose malformed-request answers are JSON envelopes."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself and takes no class for it: adopt the one it built.
        server.__class__ = _EnvelopeServer
        return server


def handler_args(options) -> dict:
    """``web.Application(handler_args=...)``: the per-connection limits from ``[options.http_server]``."""
    return {
        # One timer covers both an idle keep-alive connection and one that never completes its headers (slowloris).
        "keepalive_timeout": options.keepalive_timeout_s,
        # After an early answer (408, 413) the unread body is drained this long, so the client reads the
        # answer rather than a reset; aiohttp's 10 s would hold a stalled connection 10 s past its cut.
        "lingering_time": LINGER_S,
    }
