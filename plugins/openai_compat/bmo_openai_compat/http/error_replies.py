"""What every compat route handler shares: the disabled answer, error bookkeeping, response headers."""

from __future__ import annotations

import asyncio
import traceback

from aiohttp import web

from bmo.guidance import disabled_message
from bmo.server.auth import requester_label
from bmo.server.errors import ApiError, envelope_for_http_exception, store_error_reply
from bmo.store import StoreError
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.observe.compat_request import CompatRequest

# Set on an ApiError to name the outcome it ends the request with (default error_500).
OUTCOME_ATTR = "compat_outcome"
# Set on an ApiError to give the ledger and the record more than the client may read (an upstream's detail).
DETAIL_ATTR = "compat_error_detail"


def disabled_error() -> ApiError:
    return ApiError(404, disabled_message(), code="not_found")


def compat_error(status: int, message: str, *, outcome: str = outcomes.ERROR_500, detail: str | None = None,
                 **kwargs) -> ApiError:
    error = ApiError(status, message, **kwargs)
    setattr(error, OUTCOME_ATTR, outcome)
    setattr(error, DETAIL_ATTR, detail)
    return error


def agent_error(exc, prefix: str = "") -> ApiError:
    """An agent failure as the client's error: its sanitized message and code; its detail for the ledger."""
    return compat_error(exc.status, f"{prefix}{exc}", code=exc.code, detail=exc.detail and f"{prefix}{exc.detail}")


class PreparedError(Exception):
    """An error answer whose body is not the plain envelope (e.g. the 409 queued body)."""

    def __init__(self, status: int, body: bytes, message: str, outcome: str, detail: dict | None = None):
        super().__init__(message)
        self.detail = dict(detail or {})
        self.status = status
        self.body = body
        self.outcome = outcome

    def response(self) -> web.Response:
        # The openai SDK retries 409 silently unless told not to; the queued answer is final.
        return web.Response(status=self.status, body=self.body, content_type="application/json",
                            headers={"x-should-retry": "false"})


def requester_of(host, request: web.Request) -> str:
    """Who asked, from identity headers only a trusted proxy may set; "" (the operator) otherwise."""
    if not host.trusted_proxies.trusts(request.remote):
        return ""
    label = requester_label(request.get("requester"))
    if label:
        return label
    hooked = host.pm.hook.bmo_openai_compat_requester(request=request)
    return str(hooked) if hooked else ""


def identity_headers(rt: CompatRequest, session_id: str = "") -> dict[str, str]:
    headers = {"X-Request-Id": rt.request_id}
    if session_id:
        headers["X-BMO-Session-Id"] = session_id
    return headers


async def guarded(rt: CompatRequest, work, session_headers=lambda: "") -> web.StreamResponse:
    """Run a handler body; any error still ends the request with one terminal record and its id header."""
    try:
        return await work()
    except asyncio.CancelledError:
        await asyncio.shield(rt.finish(outcomes.CANCELLED, 499, error="request cancelled"))
        raise
    except PreparedError as exc:
        await rt.finish(exc.outcome, exc.status, error=str(exc), **exc.detail)
        response = exc.response()
    except ApiError as exc:
        await rt.finish(getattr(exc, OUTCOME_ATTR, outcomes.ERROR_500), exc.status,
                        error=getattr(exc, DETAIL_ATTR, None) or str(exc))
        response = exc.response()
    except StoreError as exc:  # a durable session cannot be saved (full disk: 507); the request is answered, not a 500
        await rt.finish(outcomes.ERROR_500, exc.status, error=str(exc))
        response = store_error_reply(exc).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        api = envelope_for_http_exception(exc)
        await rt.finish(outcomes.ERROR_500, api.status, error=str(api))
        response = api.response()
    except Exception as exc:  # noqa: BLE001 - the client gets an envelope, the log gets the traceback
        rt.host.emit("bmo.http_error", "error", path=rt.path, method=rt.method, request_id=rt.request_id,
                     error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
        await rt.finish(outcomes.ERROR_500, 500, error=f"{type(exc).__name__}: {exc}")
        response = ApiError(500, f"Internal error while handling request {rt.request_id}; the server log has "
                                 "the details.").response()
    response.headers.update(identity_headers(rt, session_headers()))
    return response
