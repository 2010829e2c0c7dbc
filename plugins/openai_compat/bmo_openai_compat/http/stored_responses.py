"""The stored-response routes: ``GET``/``DELETE /v1/responses/{id}``, ``.../input_items`` and ``.../cancel``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bmo.agent import maybe_coordinator
from bmo.agent.ownership import may_reach
from bmo_openai_compat import responses_wire as rw
from bmo_openai_compat.http.error_replies import compat_error, guarded
from bmo_openai_compat.http.read_request import begin_read, json_reply
from bmo_openai_compat.observe import outcomes
from bmo_openai_compat.response_store import ResponseStore, StoredResponse

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# How long cancel waits for the run to stop, so its answer shows the response as cancelled.
CANCEL_WAIT_S = 10.0


async def find_stored(rt, store: ResponseStore, response_id: str, param: str) -> StoredResponse:
    """The stored response, or a 404 naming ``param``.

    Every route that reaches a response (and through it its session) looks it up here, so the
    ownership rule lives here: another requester's response is a 404, exactly as a missing one.
    """
    stored = await store.get(response_id)
    if stored is None or not may_reach(await _owner(rt, stored), rt.requester):
        raise compat_error(404, f"No stored response {response_id[:64]!r}: it never existed, was deleted, or was "
                                "created with store=false.", param=param, code="response_not_found")
    return stored


async def _owner(rt, stored: StoredResponse) -> str:
    """A response belongs to its session's owner; a session already gone leaves its ledger row's requester."""
    coordinator = maybe_coordinator(rt.host)
    session = await coordinator.get_session(stored.session_id) if coordinator is not None else None
    if session is not None:
        return session.created_by
    row = await rt.ledger.get_run(stored.request_id)
    return (row or {}).get("requester") or ""  # nobody's: only the operator reaches it


async def _stored(rt, request: web.Request) -> tuple[ResponseStore, StoredResponse]:
    store = ResponseStore(rt.host.db)
    stored = await find_stored(rt, store, request.match_info["response_id"], "response_id")
    rt.set(session_id=stored.session_id, run_id=stored.run_id)
    return store, stored


def _route(label: str, act):
    """A stored-response route: its ledger row and records, the lookup, then ``act(rt, request, store, stored)``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        rt = begin_read(request, label)

        async def work() -> web.Response:
            await rt.fire()
            store, stored = await _stored(rt, request)
            body = await act(rt, request, store, stored)
            await rt.finish(outcomes.FINAL_ANSWER, 200, response_id=stored.response_id)
            return json_reply(rt, body)

        return await guarded(rt, work)

    handler.__name__ = label
    return handler


async def _get(rt, request, store, stored: StoredResponse) -> bytes:
    return stored.response


async def _delete(rt, request, store, stored: StoredResponse) -> bytes:
    # The session stays: it is BMO's conversation; only this response's id and record go.
    await store.delete(stored.response_id)
    return rw.encode(rw.ResponseDeleted(id=stored.response_id))


async def _input_items(rt, request, store, stored: StoredResponse) -> bytes:
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise compat_error(400, f"Query parameter order={order!r} is not one of: asc, desc.", param="order")
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    limit = int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise compat_error(400, f"Query parameter limit={raw!r} must be a whole number from 1 to {MAX_LIMIT}.",
                           param="limit")
    items = stored.items()
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise compat_error(400, f"Query parameter after={after!r} is not an item of response "
                                    f"{stored.response_id}; pass the last_id of the previous page.", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return rw.encode(rw.InputItemList(data=page, first_id=page[0]["id"] if page else None,
                                      last_id=page[-1]["id"] if page else None, has_more=len(items) > limit))


async def _cancel(rt, request, store, stored: StoredResponse) -> bytes:
    coordinator = maybe_coordinator(rt.host)
    run = coordinator.get_run(stored.run_id) if coordinator is not None and stored.run_id else None
    reason = "cancelled through POST /v1/responses/{id}/cancel"
    if run is None and coordinator is not None and stored.run_id and coordinator.cluster is not None:
        # Another server sharing the store runs it: its lease carries the request there.
        if await coordinator.cancel_elsewhere(reason, rt.requester, run_id=stored.run_id, wait_s=CANCEL_WAIT_S):
            await rt.event("run_cancel_requested", run_id=stored.run_id, response_id=stored.response_id,
                           elsewhere=True)
            return await _stored_after_cancel(store, stored)
    if run is None or run.done:
        raise compat_error(409, f"Response {stored.response_id} is {stored.status}, not in progress; there is "
                                "nothing to cancel.", param="response_id", code="response_not_cancellable")
    await rt.event("run_cancel_requested", run_id=run.id, response_id=stored.response_id)
    await coordinator.cancel_run(run, reason, rt.requester)
    try:
        async with asyncio.timeout(CANCEL_WAIT_S):
            await run.wait()
        # The request delivering the run stores its final form as it ends; give it that moment.
        for _ in range(50):
            again = await store.get(stored.response_id)
            if again is None or again.status != "in_progress":
                break
            await asyncio.sleep(0.02)
    except TimeoutError:
        await rt.event("run_cancel_slow", run_id=run.id)
    again = await store.get(stored.response_id)
    return (again or stored).response


async def _stored_after_cancel(store, stored: StoredResponse) -> bytes:
    """The stored response once the request delivering it stored its final form (bounded wait)."""
    for _ in range(100):
        again = await store.get(stored.response_id)
        if again is None or again.status != "in_progress":
            return (again or stored).response
        await asyncio.sleep(0.05)
    return stored.response


get_response = _route(outcomes.RESPONSES_GET, _get)
delete_response = _route(outcomes.RESPONSES_DELETE, _delete)
list_input_items = _route(outcomes.RESPONSES_INPUT_ITEMS, _input_items)
cancel_response = _route(outcomes.RESPONSES_CANCEL, _cancel)
