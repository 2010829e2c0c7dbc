"""The OpenAI error envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import msgspec
from aiohttp import web

# OpenAI's error ``type`` per status; ``code`` is always a string.
_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "unprocessable"),
    429: ("rate_limit_error", "rate_limited"),
    500: ("server_error", "internal_error"),
    502: ("upstream_error", "upstream_unreachable"),
    503: ("server_error", "unavailable"),
    507: ("server_error", "disk_full"),  # HTTP 507 Insufficient Storage: the data dir's disk is full
    504: ("upstream_error", "upstream_timeout"),
}


class ErrorBody(msgspec.Struct, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    error: ErrorBody


class ApiError(Exception):
    """Raise from a handler to answer with the OpenAI error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        default_type, default_code = _TYPES.get(status, ("server_error", "error"))
        self.status = status
        self.body = ErrorBody(message=message, type=type or default_type, param=param, code=code or default_code)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.body, self.headers)


def error_response(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if status in (409, 429) or status >= 500:
        # The openai SDK retries these silently unless told not to; our answers are final.
        headers.setdefault("x-should-retry", "false")
    return web.Response(
        status=status,
        body=msgspec.json.encode(ErrorEnvelope(error=body)),
        content_type="application/json",
        headers=headers,
    )


def envelope_for_http_exception(exc: web.HTTPException) -> ApiError:
    """Turn aiohttp's own errors (404 route, 405, 413 body too large) into envelope errors."""
    status = exc.status
    if status == 413:
        message = f"Request body too large: {exc.text}. Send a smaller body or raise [options.http_server] max_body_bytes."
    elif status == 404:
        message = "No such route. See GET /v1/models and the BMO route reference."
    elif status == 405:
        message = f"Method not allowed here: {exc.text}"
    else:
        message = exc.text or exc.reason
    return ApiError(status, message)


def store_error_reply(exc: Exception) -> ApiError:
    """The answer to a request whose durable write failed: 507 ``disk_full`` or 503 ``store_unavailable``."""
    from bmo.store import StoreError  # the store is below the server; imported late to keep this module light

    status = exc.status if isinstance(exc, StoreError) else 503
    code = exc.code if isinstance(exc, StoreError) else "store_unavailable"
    return ApiError(status, store_error_message(exc), code=code, headers={"Retry-After": "30"})


def store_error_message(exc: Exception) -> str:
    """What the client is told when a session's write fails; no path, no internals beyond SQLite's own words."""
    if getattr(exc, "status", None) == 507:
        return ("BMO cannot save this session: the disk holding its data directory is full. Requests without a "
                "session (no X-BMO-Session-Id) are still answered; retry once the operator has freed space.")
    return (f"BMO cannot save this session right now ({exc}). Requests without a session (no X-BMO-Session-Id) "
            "are still answered; retry later.")
