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


# The same kinds, for the parser's plain BadHttpMessage: matched on aiohttp's wording, never echoed.
_WORDING = (
    ("can't be present with", "Content-Length and Transfer-Encoding are both set; send only one of them"),
    ("header value char", "a header value holds a character HTTP forbids (such as NUL or a control byte)"),
    ("header name char", "a header name holds a character HTTP forbids"),
    ("chunk", "the chunked body framing is invalid"),
    ("content-length", "the Content-Length header is invalid, or set together with Transfer-Encoding"),
    ("transfer-encoding", "the Transfer-Encoding header is invalid, or set together with Content-Length"),
)


def describe(exc: BaseException | None) -> str:
    """What is wrong with a request aiohttp could not parse, in words that never quote its bytes."""
    for kind, problem in _PROBLEMS:
        if isinstance(exc, kind):
            return problem
    # Only the first line: aiohttp appends the offending bytes after it.
    text = str(getattr(exc, "message", "") or "").partition("\n")[0].lower()
    for words, problem in _WORDING:
        if words in text:
            return problem
    return "the request is not well-formed HTTP/1.1"


class EnvelopeRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler; its own error answers leave in the OpenAI envelope."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp does: a started response cannot become an error
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:  # the client's fault: a traceback per bad request would let anyone flood the server's stderr
            self.log_debug("Malformed request from %s: %s", request.remote, exc)
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
