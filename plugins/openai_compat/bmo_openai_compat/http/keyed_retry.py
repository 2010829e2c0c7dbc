"""A request with an ``Idempotency-Key`` seen before joins the run its first attempt started, on this server
(``RetryIndex``) or, on a shared store, on another one (``bmo_openai_compat.shared_keys``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bmo.server.errors import ApiError
from bmo_openai_compat import wire
from bmo_openai_compat.http.error_replies import compat_error
from bmo_openai_compat.retries import IDEMPOTENCY_HEADER, intent_of, retries_of
from bmo_openai_compat.shared_keys import SharedKey


async def join_or_claim(handler, req: wire.ChatCompletionRequest, session_id: str) -> web.StreamResponse | None:
    """The first attempt's run, followed; None when this request holds the key and starts the run."""
    index, intent = retries_of(handler.host), intent_of(session_id, req)
    seen = index.seen(handler.idempotency_key)
    if seen is not None and seen[0] != intent:
        raise key_reused()
    # The first attempt may still be before its run (router, session): wait for it to start one or give up.
    run_id = await asyncio.shield(seen[1]) if seen is not None else None
    run = handler.coordinator.get_run(run_id) if run_id else None
    if run is None or _stopped(run):
        if seen is None and handler.coordinator.cluster is not None:  # its first attempt may be on another server
            run = await _claim_shared(handler, intent)
            if run is not None:
                return await handler._join(req, run, "idempotency_key")
        index.claim(handler.idempotency_key, intent)  # forgotten, failed or stopped: this attempt is the fresh one
        return None
    return await handler._join(req, run, "idempotency_key")


async def _claim_shared(handler, intent: str):
    """The run a server sharing the store started for this key (its own, or followed from the event log);
    None once this request holds the key's claim in the store."""
    coordinator = handler.coordinator
    key = handler.shared_key = SharedKey(handler.host.db, coordinator.cluster, handler.idempotency_key, intent,
                                         handler.rt.request_id)
    while (seen := await key.claim_or_find()) is not None:
        if seen.intent != intent:
            raise key_reused()
        started = await key.wait_started(seen)
        if started is None:
            continue  # its request let the key go without a run (or its server died): claim it again
        local = coordinator.get_run(started.request_id)
        if local is not None and not _stopped(local):
            return local
        if local is None and not await key.given_up(started.request_id):
            return key.follow(started, handler.rt.requester)
        key.replace = started.request_id  # its run was stopped (or died with its server): this one starts afresh
    return None


def _stopped(run) -> bool:
    return run.result is not None and run.result.outcome == "cancelled"


def key_reused() -> ApiError:
    return compat_error(422, f"This {IDEMPOTENCY_HEADER} was used for a different request in the last "
                             "10 minutes; send a new key for a new request.",
                        param=IDEMPOTENCY_HEADER, code="idempotency_key_reused")
