"""The fake upstream's legacy ``POST /v1/completions``: a scripted reply's text as a ``text_completion``."""

from __future__ import annotations

import itertools
import time

from aiohttp import web

_IDS = itertools.count(1)


def error_response(status: int, message: str, type_: str, code: str | None, headers: dict) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


async def legacy_completion(up, request: web.Request) -> web.Response:
    """The legacy text completion: the next scripted reply's text (or the default's), never streamed."""
    rec = await up._record(request)
    denied = up._unauthorized(request)
    if denied is not None:
        return denied
    if not up.legacy_completions:
        return error_response(404, "Not found: this server has no /v1/completions.", "invalid_request_error", None, {})
    body = rec.body if isinstance(rec.body, dict) else {}
    r = up._queue.pop(0) if up._queue else up.default(body)
    if r.status != 200:
        return error_response(r.status, r.error_message, r.error_type, r.error_code, r.headers)
    prompt = len(str(body.get("prompt") or "").split()) + len(str(body.get("suffix") or "").split())
    completion = len(r.full_text().split())
    up.completed += 1
    return web.json_response({
        "id": f"cmpl-fake{next(_IDS)}", "object": "text_completion", "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "text": r.full_text(), "finish_reason": r.finish_reason or "stop", "logprobs": None}],
        "usage": r.usage or {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion},
    })
